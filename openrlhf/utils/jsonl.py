"""JSON-lines files a run writes and reads back: tolerant reading, repair of a torn tail, atomic writes.

A run can be killed (or the disk fill up) in the middle of a write, leaving a last line that is
not JSON. Readers skip such lines and count them; before a file is appended to again it is
repaired, because appending after a torn line would glue the next record onto it.
"""

from __future__ import annotations

import json
import os


def read_jsonl(path) -> tuple[list[dict], int]:
    """The JSON objects of a JSON-lines file, in order, and the count of lines skipped (not
    JSON, or JSON that is not an object). Blank lines are ignored. Raises OSError when the file
    cannot be read."""
    rows, bad = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(obj, dict):
                rows.append(obj)
            else:
                bad += 1
    return rows, bad


def write_jsonl_atomic(path, rows) -> None:
    """Write `rows` (dicts) as JSON lines through a temporary file renamed over `path`, so a
    reader or a crash sees either the old file or the new one, never half of it."""
    staging = f"{path}.tmp"
    with open(staging, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(staging, path)


def repair_jsonl(path, keep=None) -> int:
    """Rewrite `path` without its unreadable lines (and, when `keep(row) -> bool` is given,
    without the rows it rejects); return the number of unreadable lines dropped. A missing file
    is left missing (0). The rewrite is atomic."""
    if not os.path.exists(path):
        return 0
    rows, bad = read_jsonl(path)
    kept = [r for r in rows if keep is None or keep(r)]
    if bad or len(kept) != len(rows):
        write_jsonl_atomic(path, kept)
    return bad
