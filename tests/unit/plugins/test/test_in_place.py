"""The test dockyard.platform.in_place: a task is skipped only when find saw its path exactly as it would leave it."""

import hashlib

import pytest
from ansible_collections.dockyard.platform.plugins.test.in_place import in_place
from hypothesis import given
from hypothesis import strategies as st


def entry(path, content=b"", mode="0644", owner="root", group="root", **kind):
    kind = kind or {"isreg": True, "isdir": False}
    return {
        "path": path,
        "mode": mode,
        "pw_name": owner,
        "gr_name": group,
        "checksum": hashlib.sha1(content).hexdigest() if kind.get("isreg") else None,
        **kind,
    }


FOUND = {
    "files": [
        entry("/etc/a.conf", b"x = 1\n"),
        entry("/etc/d", mode="0750", group="consul", isdir=True, isreg=False),
        entry("/etc/link", isreg=False, isdir=False, islnk=True),
    ]
}


def test_a_file_with_the_content_and_attributes_is_in_place():
    assert in_place("/etc/a.conf", FOUND, content="x = 1\n", mode="0644", owner="root", group="root")
    assert in_place("/etc/a.conf", FOUND["files"], content="x = 1\n")
    assert in_place("/etc/d", FOUND, mode="0750", group="consul", directory=True)


@pytest.mark.parametrize(
    ("path", "options"),
    [
        ("/etc/a.conf", {"content": "x = 2\n"}),
        ("/etc/a.conf", {"content": "x = 1"}),  # a lost trailing newline is a change
        ("/etc/a.conf", {"mode": "0600"}),
        ("/etc/a.conf", {"owner": "consul"}),
        ("/etc/a.conf", {"group": "consul"}),
        ("/etc/a.conf", {"directory": True}),
        ("/etc/d", {"mode": "0750"}),  # a directory where a file should be
        ("/etc/d", {"directory": True, "mode": "0755"}),
        ("/etc/link", {}),
        ("/etc/missing", {}),
        ("/etc/a.conf", {"content": b"x = 1\n"}),
    ],
)
def test_anything_missing_or_different_is_not_in_place(path, options):
    assert not in_place(path, FOUND, **options)


@pytest.mark.parametrize("found", [None, {}, {"files": None}, "files", [None, 3]])
def test_results_that_cannot_be_read_are_not_in_place(found):
    assert not in_place("/etc/a.conf", found)


@given(st.text(max_size=200), st.text(max_size=200))
def test_in_place_exactly_when_the_content_is_the_same(on_host, wanted):
    found = [entry("/f", on_host.encode("utf-8"))]
    assert in_place("/f", found, content=wanted) == (on_host == wanted)
