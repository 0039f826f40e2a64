"""The README stays a user's README: short, and its layout table names every folder of the
tree (and only folders that exist), so a newcomer finds where a thing lives from it."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def layout_rows() -> list[str]:
    """The folders named in the first column of the README's "## Layout" table."""
    section = README.read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    return [m.group(1) for m in re.finditer(r"^\| `([^`]+)` \|", section, re.M)]


def test_readme_is_short():
    size = README.stat().st_size
    assert size <= 15 * 1024, f"README.md is {size} bytes: move detail to docs/ (results: docs/results/)"


def test_layout_table_matches_the_tree():
    rows = layout_rows()
    assert rows, "no layout table found"
    for row in rows:
        assert (ROOT / row).is_dir(), f"the layout table names {row}, which is not a folder"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    folders = {path.split("/")[0] + "/" for path in tracked if "/" in path and not path.startswith(".")}
    packages = {str(p.parent.relative_to(ROOT)) + "/" for p in (ROOT / "openrlhf").glob("*/__init__.py")}
    missing = sorted((folders | packages) - set(rows) - {"openrlhf/"})
    assert not missing, f"folders missing from the README's layout table: {missing}"
