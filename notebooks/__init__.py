"""Makes notebooks/conftest.py a module of its own (notebooks.conftest), so that it does not
shadow tests/conftest.py, which tests import as ``conftest``."""
