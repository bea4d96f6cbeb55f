import os

from ansible_collections.dockyard.platform.plugins.module_utils.renderer import render


def test_atomic_write_sets_mode_and_skips_identical(tmp_path):
    destination = tmp_path / "sub" / "out.cfg"
    assert render.swap(str(destination), b"one\n", mode=0o640).status == "rendered"
    assert destination.read_bytes() == b"one\n"
    assert destination.stat().st_mode & 0o777 == 0o640
    inode = destination.stat().st_ino
    assert render.swap(str(destination), b"one\n", mode=0o640).status == "unchanged"
    assert destination.stat().st_ino == inode  # untouched
    assert render.swap(str(destination), b"two\n").status == "rendered"
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


def test_swap_checks_the_candidate_and_keeps_the_live_file_when_the_check_fails(tmp_path):
    destination = tmp_path / "out.cfg"
    destination.write_bytes(b"old\n")
    refused = render.swap(str(destination), b"bad\n", check="! grep -q bad %s", timeout=10)
    assert (refused.status, refused.checked.ok) == ("check failed", False)
    assert destination.read_bytes() == b"old\n"
    assert os.listdir(tmp_path) == ["out.cfg"]
    passed = render.swap(str(destination), b"good\n", check=["grep", "-q", "good", "%s"], timeout=10)
    assert (passed.status, passed.checked.ok, passed.live.contents) == ("rendered", True, b"old\n")
    assert destination.read_bytes() == b"good\n"
    assert os.listdir(tmp_path) == ["out.cfg"]
