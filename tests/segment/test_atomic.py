"""segment.atomic: the one way files are written (checkpoints, PNGs, exports, JSON records, datasets)."""

import json
import os

import pytest
import torch

from segment import atomic


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def test_umask_is_read_without_changing_it(umask_027):
    assert atomic.current_umask() == 0o027
    assert os.umask(0o027) == 0o027  # still what the test set


def test_new_file_gets_the_mode_a_plain_open_gives(tmp_path, umask_027):
    with open(tmp_path / "plain", "wb") as f:
        f.write(b"x")
    for write in (lambda p: atomic.write_bytes(p, b"x"), lambda p: atomic.write_text(p, "x"),
                  lambda p: atomic.write_json(p, [1]), lambda p: atomic.torch_save({"a": 1}, p)):
        path = write(tmp_path / "new")
        assert path.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777 == 0o640
        path.unlink()


def test_contents_round_trip(tmp_path):
    assert atomic.write_bytes(tmp_path / "a" / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"  # folders made
    assert atomic.write_text(tmp_path / "t.txt", "é\n").read_text(encoding="utf-8") == "é\n"
    assert json.loads(atomic.write_json(tmp_path / "j.json", {"k": [1, 2]}).read_text()) == {"k": [1, 2]}
    atomic.torch_save({"w": torch.arange(3)}, tmp_path / "c.pt")
    assert torch.load(tmp_path / "c.pt", weights_only=True)["w"].tolist() == [0, 1, 2]


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    path = atomic.write_bytes(tmp_path / "f.bin", b"old contents")

    def half_then_fail(f):
        f.write(b"new con")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic.write_atomic(path, half_then_fail)
    assert path.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_a_torch_save_that_fails_midway_leaves_the_old_checkpoint(tmp_path):
    path = tmp_path / "c.pt"
    atomic.torch_save({"iteration": 1}, path)
    with pytest.raises(Exception):
        atomic.torch_save({"iteration": 2, "bad": lambda: None}, path)  # a lambda cannot be pickled
    assert torch.load(path, weights_only=True) == {"iteration": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_an_object_json_cannot_encode_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        atomic.write_json(tmp_path / "j.json", {"x": object()})
    assert list(tmp_path.iterdir()) == []


def test_file_is_synced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace(a, b):
        events.append("rename")
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic.write_bytes(tmp_path / "f", b"x")
    assert events == ["fsync-file", "rename", "fsync-dir"]


def test_path_writer_file_and_folder_targets(tmp_path, umask_027):
    out = atomic.write_path_atomic(tmp_path / "m.onnx", lambda tmp: tmp.write_bytes(b"graph"))
    assert out.read_bytes() == b"graph" and out.stat().st_mode & 0o777 == 0o640

    def ir(tmp):
        tmp.mkdir()
        (tmp / "model.xml").write_text("<xml/>")
        (tmp / "model.bin").write_bytes(b"w")

    folder = atomic.write_path_atomic(tmp_path / "m.ir", ir)
    assert sorted(p.name for p in folder.iterdir()) == ["model.bin", "model.xml"]

    def other(tmp):
        tmp.mkdir()
        (tmp / "model.xml").write_text("<other/>")

    # Another process finished the same folder first: theirs is kept, ours dropped.
    atomic.write_path_atomic(tmp_path / "m.ir", other)
    assert (folder / "model.xml").read_text() == "<xml/>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ir", "m.onnx"]


def test_path_writer_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    path = atomic.write_path_atomic(tmp_path / "m.onnx", lambda tmp: tmp.write_bytes(b"old"))

    def fail(tmp):
        tmp.write_bytes(b"ne")
        raise RuntimeError("exporter crashed")

    with pytest.raises(RuntimeError, match="exporter crashed"):
        atomic.write_path_atomic(path, fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
