import os
import sys

import pytest

# tests/ holds helpers (tiny_model.py) that tests import by module name.
sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def restore_environment():
    """The CLI's main() quiets libraries through os.environ (for the actors it starts); keep that
    from leaking from one test into later tests and their subprocesses."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
