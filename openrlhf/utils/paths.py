"""Where the files that ship with the code are: the default prompts and the held-out quick set.

From a source checkout (editable install or plain ``python -m``) they are read from the tree, so
editing ``knowrl_prompts/`` takes effect at once; a wheel (``pip install .``) carries copies as
package data (``openrlhf/knowrl_prompts/``, ``evaluation/data/``, see setup.py), used when the
tree is not there.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]      # openrlhf/
SOURCE_TREE = PACKAGE_DIR.parent                        # the checkout, or site-packages when installed
PROMPTS_DIR_NAME = "knowrl_prompts"


def default_prompts_dir() -> Path:
    """The default prompt folder (templates and seed tasks): ``<checkout>/knowrl_prompts`` when
    it exists, else the copy installed inside the package (``openrlhf/knowrl_prompts``). Returns
    the checkout path when neither exists, so error messages name the folder users know."""
    source = SOURCE_TREE / PROMPTS_DIR_NAME
    installed = PACKAGE_DIR / PROMPTS_DIR_NAME
    return installed if not source.is_dir() and installed.is_dir() else source
