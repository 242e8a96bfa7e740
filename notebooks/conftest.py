"""Run the notebooks as tests when nbmake is installed (``pip install -e '.[test]'``).

nbmake collects ``*.ipynb`` only with ``--nbmake``; turning that on here, rather than in
``addopts``, keeps a plain ``pytest`` working where nbmake is absent (the notebooks are
then not collected at all).
"""


def pytest_configure(config) -> None:
    if config.pluginmanager.hasplugin("nbmake"):
        config.option.nbmake = True
