"""The loopback Consul that the integration tests rely on really serves KV."""

import urllib.error
import urllib.request

import pytest


def test_write_then_read_a_key(consul_agent):
    consul_agent.put("harness/check", "hello")
    assert consul_agent.get("harness/check") == b"hello"


def test_acl_agent_denies_anonymous_reads(consul_acl_agent):
    consul_acl_agent.put("harness/secret", "x")
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(consul_acl_agent.url + "/v1/kv/harness/secret", timeout=5)
    # Consul answers a read the token may not make as if the key did not exist.
    assert denied.value.code in (403, 404)
