"""Benchmarks of hf_unmask: speed, quality and the paper's claims, each a module run from the repository root.

    python -m benchmarks.generation_overhead
    python -m benchmarks.long_buffer_regime --lengths 64 --n 200

Shared bookkeeping (decode records, fronts compared at matched NFE) lives in `benchmarks.regime`.
"""
