#!/usr/bin/env python
"""Prepare the paper's datasets for verl (parquet) and TRL (Hugging Face dataset).

Same as ``minimal-rl prepare-data ...``; see ``python recipes/prepare_data.py --help`` and docs/reproduce.md.

    python recipes/prepare_data.py numina_math --tokenizer Qwen/Qwen2.5-Math-7B --num-proc 16
    python recipes/prepare_data.py math500 minerva_math olympiadbench
    python recipes/prepare_data.py math500 --input /path/to/math500.jsonl
"""

import sys

from minimal_rl_app.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare-data", *sys.argv[1:]]))
