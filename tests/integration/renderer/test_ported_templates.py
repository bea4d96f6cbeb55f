"""consul-template templates ported to the renderer render what consul-template renders, byte for byte.

Each directory under ported/ holds a public consul-template template
(original.ctmpl, its source named in data.json), our Jinja2 port
(template.j2), the KV and catalog data, and the golden output worked out by
hand from consul-template's documented semantics (not captured from our
output):

- haproxy/: hashicorp/consul-template examples/haproxy.md, KV through key()
  and ls(), servers through service("release.web"), healthy instances only,
  sorted by node.
- properties/: hashicorp/consul-template docs/templating-language.md, the
  tree example. consul-template's tree() matches a string prefix, so the port
  asks for match="prefix" (our default is folder semantics): the sibling key
  service/redis-sentinel/quorum comes out as "-sentinel/quorum".
- nginx/: hashicorp/consul-template examples/nginx.md, an upstream per service
  from services() and service(), the {{else}} branch for a service without a
  healthy instance. The Consul server's own "consul" service is in the catalog
  too; its port (the server RPC port) differs per run, so the golden file
  names it @CONSUL_SERVER_PORT@.

Each test loads its data into its own Consul agent on loopback (KV with PUT,
catalog with /v1/catalog/register) and renders with runner.complete(), the
loop of the daemon's once mode.
"""

import base64
import json
import subprocess
from pathlib import Path

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.consul import (
    ConsulClient,
    ConsulError,
    parse_settings,
)
from ansible_collections.dockyard.platform.plugins.module_utils.renderer import runner
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.brain import Brain
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.template import Template

PORTED = Path(__file__).parent / "ported"


def load_data(agent, data: dict) -> None:
    for key, value in data["kv"].items():
        agent.put(key, value)
    for registration in data["catalog"]:
        agent.request("PUT", "/v1/catalog/register", json.dumps(registration).encode())


def render(agent, source: str):
    client = ConsulClient(parse_settings({"address": agent.address}))
    return runner.complete(Template("ported", source), Brain(), client)


def read_exact(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


@pytest.mark.parametrize(
    ("name", "golden"),
    [("haproxy", "golden.cfg"), ("properties", "golden.properties"), ("nginx", "golden.conf")],
)
def test_a_ported_template_renders_what_consul_template_renders(consul_private_agent, name, golden):
    directory = PORTED / name
    data = json.loads((directory / "data.json").read_text())
    assert data["source"].startswith("hashicorp/consul-template"), "each port names its original"
    load_data(consul_private_agent, data)
    execution = render(consul_private_agent, read_exact(directory / "template.j2"))
    assert execution.complete, (execution.error, execution.unfetched, execution.missing)
    expected = read_exact(directory / golden).replace("@CONSUL_SERVER_PORT@", str(consul_private_agent.ports["server"]))
    assert execution.contents == expected.encode("utf-8")


def test_binary_values_render_back_to_their_bytes(consul_agent):
    raw = b"\x00\xff\xfe bin \xc3( \xe2\x82\xac\r\n"
    consul_agent.put("ported-binary/blob", raw)
    execution = render(consul_agent, '{{ key("ported-binary/blob") }}|{{ key("ported-binary/blob") | base64Encode }}')
    assert execution.complete, execution.error
    value, encoded = execution.contents.split(b"|")
    assert value == raw
    assert encoded == base64.b64encode(raw)


def test_the_daemon_writes_binary_values_and_crlf_line_endings_byte_for_byte(consul_agent, renderer, tmp_path):
    raw = b"\x00\xff\xfe bin \xc3( \xe2\x82\xac"
    consul_agent.put("ported-daemon/blob", raw)
    source, destination = tmp_path / "blob.ctmpl", tmp_path / "blob.out"
    source.write_bytes(b'value={{ key("ported-daemon/blob") }}\r\nend\r\n')
    config = {
        "consul": {"address": consul_agent.address},
        "templates": [{"source": str(source), "destination": str(destination)}],
    }
    once = renderer(config, mode="once", start=False)
    done = subprocess.run(once.argv(), env=once.env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert destination.read_bytes() == b"value=" + raw + b"\r\nend\r\n"


def test_empty_values_behave_as_in_consul_template(consul_agent):
    consul_agent.put("ported-empty/key", "")
    execution = render(
        consul_agent,
        '[{{ key_or_default("ported-empty/key", "fallback") }}][{{ keyOrDefault("ported-empty/none", "d") }}]'
        '[{{ key("ported-empty/key") | parseJSON }}][{{ keyExists("ported-empty/key") }}]',
    )
    assert execution.complete, execution.error
    assert execution.output == "[fallback][d][{}][True]"


def test_a_datacenter_goes_to_consul_as_the_dc_parameter(consul_agent):
    consul_agent.put("ported-dc/key", "here")
    execution = render(consul_agent, '{{ key("ported-dc/key@dc1") }} {{ tree("ported-dc@dc1") | length }}')
    assert execution.complete, execution.error
    assert execution.output == "here 1"
    with pytest.raises(ConsulError, match="No path to datacenter"):
        render(consul_agent, '{{ key("ported-dc/key@elsewhere") }}')


def test_safe_tree_holds_the_render_back_until_the_prefix_has_data(consul_agent):
    source = '{% for pair in safeTree("ported-safe") %}{{ pair.Key }}{% endfor %}'
    waiting = render(consul_agent, source)
    assert not waiting.complete
    assert waiting.missing == ["safe_tree(ported-safe/)"]
    consul_agent.put("ported-safe/a", "1")
    assert render(consul_agent, source).output == "a"


def test_service_filters_tags_and_datacenters_against_a_real_catalog(consul_private_agent):
    statuses = {"n1": "passing", "n2": "warning", "n3": "critical", "n4": None}
    for number, (node, status) in enumerate(statuses.items(), 1):
        registration = {
            "Node": node,
            "Address": f"10.1.0.{number}",
            "Service": {"ID": f"db{number}", "Service": "db", "Tags": ["primary"] if number % 2 else [], "Port": 5432},
        }
        if status:
            registration["Check"] = {
                "Node": node,
                "CheckID": f"c{number}",
                "Status": status,
                "ServiceID": f"db{number}",
            }
        consul_private_agent.request("PUT", "/v1/catalog/register", json.dumps(registration).encode())
    nodes_of = "| map(attribute='Node') | join(',') }}"
    execution = render(
        consul_private_agent,
        "{{ service('db') " + nodes_of + " {{ service('db', 'passing,warning') " + nodes_of + " "
        "{{ service('db|any') " + nodes_of + " {{ service('primary.db@dc1|any') " + nodes_of + " "
        "{{ service('db|critical') | map(attribute='Status') | join }} "
        "{{ services('@dc1') | map(attribute='Name') | join(',') }} {{ nodes() | length }}",
    )
    assert execution.complete, execution.error
    assert execution.output == "n1,n4 n1,n2,n4 n1,n2,n3,n4 n1,n3 critical consul,db 5"
