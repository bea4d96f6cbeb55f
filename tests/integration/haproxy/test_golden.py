"""The router's configuration from a fixed set of KV data is byte-identical to a file kept from before a refactor.

The golden file was rendered by the code of the session that folded the
renderer's contracts, before the fold; a change to the rendered bytes must be
deliberate: regenerate it with GOLDEN_UPDATE=1 and say why in the commit.
"""

import json
import os
from pathlib import Path

from ansible_collections.dockyard.platform.plugins.module_utils.renderer.brain import Brain
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.dependencies import PrefixDependency
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.template import Template
from haproxy_helpers import check_config, render_role_template

GOLDEN = Path(__file__).parent / "golden" / "haproxy.cfg"
PREFIX = "dockyard/"
ROUTES = {
    "shop": {
        "hosts": ["shop.example.com", "www.shop.example.com"],
        "service_port": 10080,
        "balance": "leastconn",
        "health": {"path": "/healthz", "expect_status": 204, "body_contains": "ok", "interval": "2s"},
        "canary_weight": 10,
        "sticky": True,
        "idempotency_header": "Idempotency-Key",
    },
    "api": {"service_port": 10081},
    "many": {"hosts": [f"h{number}.many.example.com" for number in range(20)]},
    "broken": {"hosts": ["broken.example.com"], "helth": {}},
}
INSTANCES = {
    "node1/shop/t1": {"addr": "10.0.0.11", "port": 31001, "version": "v1", "track": "stable"},
    "node2/shop/t2": {"addr": "10.0.0.12", "port": 31002, "version": "v1", "track": "stable"},
    "node3/shop/t3": {"addr": "10.0.0.13", "port": 31003, "version": "v2", "track": "canary"},
    "node1/api/a1": {"addr": "fd00::1", "port": 32000, "version": "v7", "track": "stable"},
    "node2/api/bad": {"addr": "fe80::1%eth0", "port": 32000},
}


def test_the_rendered_configuration_matches_the_golden_file(tmp_path):
    variables = {
        "haproxy_kv_prefix": PREFIX,
        "ansible_managed": "Managed by the golden test",
        # haproxy -c runs unprivileged here: no chroot, user or log.
        "_haproxy_chroot": "",
        "_haproxy_user": "",
        "haproxy_log_target": "off",
    }
    template = render_role_template(tmp_path, tmp_path / "haproxy.ctmpl", **variables)
    brain = Brain()
    brain.remember(
        PrefixDependency(f"{PREFIX}routes/"),
        tuple((f"{PREFIX}routes/{app}", json.dumps(spec), index) for index, (app, spec) in enumerate(ROUTES.items())),
    )
    brain.remember(
        PrefixDependency(f"{PREFIX}instances/"),
        tuple((f"{PREFIX}instances/{key}", json.dumps(value), 1) for key, value in sorted(INSTANCES.items())),
    )
    execution = Template("haproxy", template.read_text()).execute(brain)
    assert execution.complete, execution.error
    if os.environ.get("GOLDEN_UPDATE") == "1":
        GOLDEN.write_text(execution.output)
    live = tmp_path / "haproxy.cfg"
    live.write_text(execution.output)
    assert execution.output == GOLDEN.read_text()
    assert len(execution.warnings) == 2, execution.warnings
    checked = check_config(live)
    assert checked.returncode == 0, checked.stdout + checked.stderr
