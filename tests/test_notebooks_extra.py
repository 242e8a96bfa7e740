"""The notebooks extra brings Jupyter, and notebooks/README.md tells a reader to install it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:   # the project supports 3.10, whose standard library has no TOML reader
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_notebooks_extra_brings_a_jupyter_frontend_and_a_kernel():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=\[ ]", requirement, maxsplit=1)[0].lower() for requirement in extras["notebooks"]}
    assert names & {"jupyterlab", "notebook"} and "ipykernel" in names


def test_notebooks_readme_names_the_extra():
    assert "pip install -e '.[notebooks]'" in (ROOT / "notebooks" / "README.md").read_text()
