import os

from ansible_collections.dockyard.platform.plugins.module_utils.renderer import render


def test_atomic_write_sets_mode_and_skips_identical(tmp_path):
    destination = tmp_path / "sub" / "out.cfg"
    assert render.write(str(destination), b"one\n", mode=0o640)
    assert destination.read_bytes() == b"one\n"
    assert destination.stat().st_mode & 0o777 == 0o640
    inode = destination.stat().st_ino
    assert not render.write(str(destination), b"one\n", mode=0o640)
    assert destination.stat().st_ino == inode  # untouched
    assert render.write(str(destination), b"two\n")
    assert destination.stat().st_mode & 0o777 == 0o640  # keeps the live file's mode
    assert destination.stat().st_ino != inode  # replaced by rename, never rewritten in place
    assert os.listdir(destination.parent) == ["out.cfg"]


def test_candidate_then_restore(tmp_path):
    destination = tmp_path / "out.cfg"
    destination.write_bytes(b"old\n")
    destination.chmod(0o600)
    live = render.read_live(str(destination))
    candidate = render.write_candidate(str(destination), b"new\n", live=live)
    assert os.path.dirname(candidate) == str(tmp_path)
    assert destination.read_bytes() == b"old\n"
    render.commit(candidate, str(destination))
    assert destination.read_bytes() == b"new\n"
    render.restore(str(destination), live)
    assert destination.read_bytes() == b"old\n"
    assert destination.stat().st_mode & 0o777 == 0o600
    render.restore(str(destination), render.Live(None))
    assert not destination.exists()
