"""skilltrain.files: atomic writes and strict JSON."""

from __future__ import annotations

import json
import math
import os
import stat

import pytest

from skilltrain.files import atomic_write_text, read_json, write_json


def test_json_is_strict_nan_and_infinity_become_null(tmp_path):
    write_json(tmp_path / "a.json", {"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": {"d": float("nan")}})
    text = (tmp_path / "a.json").read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert data == {"a": None, "b": [None, None, 1.5], "c": {"d": None}}
    assert read_json(tmp_path / "a.json") == data


def test_an_atomic_write_leaves_no_temporary_file_and_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "x.txt", "hello")
    finally:
        os.umask(mask)
    assert (tmp_path / "x.txt").read_text() == "hello"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]
    assert stat.S_IMODE((tmp_path / "x.txt").stat().st_mode) == 0o644  # not mkstemp's private 0600


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "x.txt"
    target.write_text("old")

    def broken_replace(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]
