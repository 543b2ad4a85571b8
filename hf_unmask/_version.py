"""The version of hf_unmask (a module of its own, so any part of the package can read it without importing the
whole package)."""

__version__ = "0.1.0"
