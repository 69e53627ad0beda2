"""synflow.core.files.atomic_write: the one atomic write of every file the library writes."""

from __future__ import annotations

import json
import os
import stat

import pytest

from synflow.core import files
from synflow.core.files import atomic_write


def write(path, value, **kwargs):
    return atomic_write(path, lambda f: json.dump(value, f), text=True, **kwargs)


def test_a_failed_rename_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "a" / "run.json"
    write(path, {"v": 1})

    def no_rename(source, target):
        raise OSError("disk gone")

    monkeypatch.setattr(files.os, "replace", no_rename)
    with pytest.raises(OSError, match="disk gone"):
        write(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}  # the old file is intact
    assert os.listdir(path.parent) == ["run.json"]


def test_a_writer_that_raises_leaves_nothing_behind(tmp_path):
    def half(f):
        f.write(b"{\"v\": ")
        raise KeyboardInterrupt("killed while writing")

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "x.json", half)
    assert os.listdir(tmp_path) == []


def test_exclusive_writes_exactly_once(tmp_path):
    write(tmp_path / "run.json", {"v": 1}, exclusive=True)
    with pytest.raises(FileExistsError):
        write(tmp_path / "run.json", {"v": 2}, exclusive=True)
    assert json.loads((tmp_path / "run.json").read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["run.json"]


def test_a_written_file_follows_the_umask_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "run.json", lambda f: f.write(b"{}"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by the group on a cluster
        os.umask(0o077)
        private = atomic_write(tmp_path / "private.json", lambda f: f.write(b"{}"))
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    finally:
        os.umask(old)
