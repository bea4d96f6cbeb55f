"""The test dockyard.platform.installed: only a package in place at the asked version lets a role skip apt."""

import pytest
from ansible_collections.dockyard.platform.plugins.test.installed import all_installed
from hypothesis import given
from hypothesis import strategies as st

FACTS = {
    "consul": [{"name": "consul", "version": "1.8.7+dfsg1-2", "arch": "amd64"}],
    "python3": [{"name": "python3", "version": "3.11.2-1+b1", "arch": "amd64"}],
    "libc6": [
        {"name": "libc6", "version": "2.36-9", "arch": "amd64"},
        {"name": "libc6", "version": "2.36-9", "arch": "i386"},
    ],
}


@pytest.mark.parametrize(
    "specs",
    [["consul", "python3"], "consul", ["consul=1.8.7+dfsg1-2"], ["consul=1.8.7*"], ["libc6:i386"], []],
)
def test_specs_in_place_are_installed(specs):
    assert all_installed(specs, FACTS)


@pytest.mark.parametrize(
    "specs",
    [
        ["consul", "haproxy"],
        ["consul=1.9.0-1"],
        ["consul=1.8"],
        ["libc6:arm64"],
        ["consul>=1.8"],  # not a form this test reads: apt decides
        ["Consul"],
        [None],
        {"consul": "present"},
    ],
)
def test_anything_missing_other_or_unread_is_not_installed(specs):
    assert not all_installed(specs, FACTS)


def test_without_package_facts_nothing_counts_as_installed():
    assert not all_installed(["consul"], None)
    assert not all_installed(["consul"], "packages")


@given(st.lists(st.text(max_size=30), max_size=4))
def test_a_spec_is_installed_only_when_its_package_name_is_in_the_facts(specs):
    if all_installed(specs, FACTS):
        assert all(spec.split("=", 1)[0].split(":", 1)[0] in FACTS for spec in specs)
