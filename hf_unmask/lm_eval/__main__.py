"""`python -m hf_unmask.lm_eval ...`: lm-eval's command line with the `hf_unmask` model (see `evaluate.main`)."""

from hf_unmask.lm_eval.evaluate import main

if __name__ == "__main__":
    main()
