import grp
import os
import pathlib
import pwd
import shutil
import subprocess
import sys
import tempfile

import pytest
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


def test_a_mode_change_alone_is_applied_in_place_and_reported(tmp_path):
    destination = tmp_path / "out.cfg"
    assert render.swap(str(destination), b"same\n", mode=0o644).status == "rendered"
    inode = destination.stat().st_ino
    assert render.swap(str(destination), b"same\n", mode=0o600).status == "attributes"
    assert oct(destination.stat().st_mode & 0o777) == "0o600"
    assert destination.stat().st_ino == inode  # set on the live file: the contents were not written again
    assert destination.read_bytes() == b"same\n"
    assert render.swap(str(destination), b"same\n", mode=0o600).status == "unchanged"
    assert render.swap(str(destination), b"same\n").status == "unchanged"  # no mode configured: the live one stays


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another owner takes root")
def test_an_owner_or_group_change_alone_is_applied_in_place_and_reported(tmp_path):
    destination = tmp_path / "out.cfg"
    assert render.swap(str(destination), b"same\n").status == "rendered"
    inode = destination.stat().st_ino
    assert render.swap(str(destination), b"same\n", user="nobody").status == "attributes"
    assert (destination.stat().st_uid, destination.stat().st_gid) == (NOBODY.pw_uid, 0)
    assert render.swap(str(destination), b"same\n", user="nobody", group=NOGROUP).status == "attributes"
    assert (destination.stat().st_uid, destination.stat().st_gid) == (NOBODY.pw_uid, grp.getgrnam(NOGROUP).gr_gid)
    assert destination.stat().st_ino == inode
    assert render.swap(str(destination), b"same\n", user="nobody", group=NOGROUP).status == "unchanged"


NOBODY = pwd.getpwnam("nobody")
NOGROUP = grp.getgrgid(NOBODY.pw_gid).gr_name
UNPRIVILEGED_SWAP = """
import sys
from ansible_collections.dockyard.platform.plugins.module_utils.renderer import render
try:
    render.swap(sys.argv[1], sys.argv[2].encode(), user=sys.argv[3] or None, group=sys.argv[4] or None)
except render.OwnershipError as error:
    print(error)
    sys.exit(3)
"""


@pytest.fixture(scope="module")
def readable_collection():
    """The collection's module_utils copied where nobody can read them: a checkout may sit in a 0700 directory."""
    root = tempfile.mkdtemp(prefix="render-files-code-")
    os.chmod(root, 0o755)
    source = os.path.abspath(render.__file__).split("/plugins/module_utils/")[0] + "/plugins/module_utils"
    target = os.path.join(root, "ansible_collections", "dockyard", "platform", "plugins", "module_utils")
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    for directory, _subdirectories, files in os.walk(root):
        os.chmod(directory, 0o755)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644)
    yield root
    shutil.rmtree(root)


def _swap_as_nobody(collections, destination, contents: str, user="", group=""):
    """Runs render.swap() as the unprivileged user nobody: setpriv when the tests run as root, else as we are."""
    if os.geteuid() != 0:
        command = [sys.executable]
    else:
        python = shutil.which("python3", path="/usr/bin:/bin")  # ours may live where nobody cannot read
        if not shutil.which("setpriv") or not python:
            pytest.skip("running as root without setpriv or a system python3 to drop privileges with")
        command = ["setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}", "--clear-groups", python]
    return subprocess.run(
        [*command, "-c", UNPRIVILEGED_SWAP, str(destination), contents, user, group],
        env={"PYTHONPATH": collections, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def shared_dir():
    """A directory nobody can write (tmp_path's parents are root's alone)."""
    directory = tempfile.mkdtemp(prefix="render-files-")
    os.chmod(directory, 0o777)
    yield pathlib.Path(directory)
    shutil.rmtree(directory)


@pytest.mark.parametrize(("user", "group", "named"), [("root", "", "owner root"), ("", "root", "group root")])
def test_an_owner_or_group_an_unprivileged_process_cannot_give_is_an_error_and_the_live_file_stays(
    shared_dir, readable_collection, user, group, named
):
    destination = shared_dir / "out.cfg"
    assert _swap_as_nobody(readable_collection, destination, "old\n").returncode == 0
    before = destination.stat()
    refused = _swap_as_nobody(readable_collection, destination, "new\n", user, group)
    assert refused.returncode == 3, refused.stderr
    assert f"cannot give {destination} {named}" in refused.stdout
    assert destination.read_bytes() == b"old\n"
    assert destination.stat().st_ino == before.st_ino
    assert os.listdir(shared_dir) == ["out.cfg"]  # no candidate left
    # Contents unchanged, only the owner or group to set on the live file: the same error, the file untouched.
    refused = _swap_as_nobody(readable_collection, destination, "old\n", user, group)
    assert refused.returncode == 3 and f"cannot give {destination} {named}" in refused.stdout
    assert (destination.stat().st_uid, destination.stat().st_gid) == (before.st_uid, before.st_gid)


def test_candidates_a_crash_left_are_removed_and_nothing_else(tmp_path):
    destination = tmp_path / "out.cfg"
    destination.write_bytes(b"live\n")
    crashed = render.write_candidate(str(destination), b"half\n")  # as if the daemon died before swapping it
    kept = [
        "out.cfg",
        ".out.cfg.ABCDEFGH.candidate",  # not tempfile's alphabet
        ".out.cfg.abc.candidate",
        ".out.cfg.abcd1234.candidate.keep",
        ".other.cfg.abcd1234.candidate",  # beside another destination
        "out.cfg.abcd1234.candidate",
    ]
    for name in kept[1:]:
        (tmp_path / name).write_text("not ours\n")
    (tmp_path / ".out.cfg.dir12345.candidate").mkdir()
    assert render.remove_stale_candidates(str(destination)) == [crashed]
    assert sorted(os.listdir(tmp_path)) == sorted([*kept, ".out.cfg.dir12345.candidate"])
    assert render.remove_stale_candidates(str(tmp_path / "absent" / "x.cfg")) == []
