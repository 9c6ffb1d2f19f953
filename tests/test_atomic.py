"""Outputs are written atomically: a failure leaves the previous file intact and no temporary file."""

from __future__ import annotations

import json

import pytest

from ovlab.atomic import atomic_open, write_json, write_with


def test_unserialisable_object_keeps_the_old_file(tmp_path):
    target = tmp_path / "results" / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_exception_midway_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "big.bin"
    with pytest.raises(RuntimeError):
        with atomic_open(target, "wb") as fh:
            fh.write(b"x" * 1000)
            raise RuntimeError("killed")
    assert not target.exists() and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="modes"):
        with atomic_open(target, "a"):
            pass


def test_nan_is_refused_rather_than_written_as_invalid_json(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "m.json", {"miou": float("nan")})
    write_with(tmp_path / "w.txt", lambda fh: fh.write("ok"), binary=False)
    assert (tmp_path / "w.txt").read_text() == "ok"
