"""atomic_path / atomic_dir: all or nothing, and ordinary file modes."""
import os
import stat

import pytest

from viral.io import atomic_dir, link_or_copy, write_json


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_dir_replaces_the_whole_folder(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
        (tmp / "b.txt").write_text("1")
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"] and (out / "a.txt").read_text() == "2"
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~_umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary or old folder left


def test_atomic_dir_failure_keeps_the_old_folder(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("interrupted")
    assert (out / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_written_files_get_the_umask_mode(tmp_path):
    write_json(tmp_path / "r.json", {"a": 1})
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o666 & ~_umask()


def test_link_or_copy_replaces_the_target(tmp_path):
    (tmp_path / "src").write_text("new")
    (tmp_path / "dst").write_text("old")
    link_or_copy(tmp_path / "src", tmp_path / "dst")
    assert (tmp_path / "dst").read_text() == "new"
