"""Fixtures of the unit tests."""

import pytest
from support.fake_consul import FakeConsul


@pytest.fixture
def fake_consul():
    """The one fake Consul (tests/support/fake_consul.py), empty; tests seed it with fake_consul.set()."""
    consul = FakeConsul()
    yield consul
    consul.close()
