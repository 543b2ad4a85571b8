"""`python -m hf_unmask COMMAND ...`: the same as `hf-unmask COMMAND ...` (and `python -m hf_unmask.cli`), e.g.
`torchrun --nproc_per_node 2 -m hf_unmask evaluate ...`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
