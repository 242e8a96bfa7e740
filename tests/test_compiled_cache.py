"""The compiled engine's disk cache is invalidated by an edit to any file of the package.

numba checks only a cached function's own source file, but a kernel compiles in the helpers
it calls from other files: after an edit or an upgrade it would run stale helpers."""

from __future__ import annotations

import shutil

from paysim.engine.compiled import loop, primitives


def test_kernels_are_stamped_with_the_whole_package():
    locator = loop.run._cache._impl._locator
    assert type(locator).__name__.startswith("Package")
    assert locator.get_source_stamp() == primitives._package_stamp()


def test_the_stamp_changes_with_any_helper_file(tmp_path, monkeypatch):
    copy = tmp_path / "compiled"
    shutil.copytree(primitives._PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(primitives, "_PACKAGE", copy)
    primitives._package_stamp.cache_clear()
    try:
        before = primitives._package_stamp()
        primitives._package_stamp.cache_clear()
        assert primitives._package_stamp() == before          # the same sources, the same stamp
        (copy / "station.py").write_text((copy / "station.py").read_text() + "\n# edited\n")
        primitives._package_stamp.cache_clear()
        assert primitives._package_stamp() != before
    finally:
        primitives._package_stamp.cache_clear()
