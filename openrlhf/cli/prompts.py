"""`knowrl-prompts validate [DIR] [--seeds PATH] [--strict]`: check prompt templates and seed tasks.

The installed command for `python -m openrlhf.knowrl.prompts validate`; DIR defaults to the
prompts shipped with the package (see openrlhf/utils/paths.py), so it runs from any folder.
"""

from __future__ import annotations

import sys

from openrlhf.knowrl.validate_prompts import main as validate_main

USAGE = "usage: knowrl-prompts validate [DIR] [--seeds PATH] [--strict]"


def main(argv: list[str] | None = None) -> int:
    """Run the prompt check on `argv` (default sys.argv[1:]), whose first word must be
    `validate`; returns the exit status (0 clean, 1 problems found, 2 usage error)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["validate"]:
        print(USAGE, file=sys.stderr)
        return 2
    return validate_main(argv[1:], prog="knowrl-prompts validate")


if __name__ == "__main__":
    sys.exit(main())
