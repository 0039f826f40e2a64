"""The markdown table the run report and the runs table are written with."""

from __future__ import annotations


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table: a header row, a separator row, then one row per entry
    of ``rows`` (each a list of cell strings, same length as ``head``). Cells are written as
    given: escape ``|`` in them first where the text is free-form. No trailing newline."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
