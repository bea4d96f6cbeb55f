#!/usr/bin/python
# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: app
short_description: Deploy, scale and roll an app on the Swarm, waiting for the outcome and rolling back on failure
version_added: 0.1.0
description:
  - Runs on a Swarm manager. Each version of an app is a Swarm service of its own; the module starts new instances,
    waits until they are healthy and registered (and UP on every router that reports), drains old ones and removes
    them, stepping by the app's upgrade strategy (Marathon's C(minimum_health_capacity) and
    C(maximum_over_capacity)).
  - A rollout that fails (an instance never serves, tasks keep failing, the deadline passes) is rolled back to the
    version that served before; the task then fails saying what went wrong and that the rollback completed.
  - Every deployment holds the app's lock in ZooKeeper and is recorded in its ledger there; O(rollback) and
    O(rollback_to) deploy a recorded version again.
  - An unchanged spec touches nothing. A change of O(instances) only starts or drains instances; a change of
    O(hosts), O(service_port) or routing health only rewrites the app's route.
  - See the collection's C(docs/app.md) for the design and every option's grammar.
author:
  - Dockyard engineers (@dockyard)
extends_documentation_fragment:
  - dockyard.platform.consul
  - dockyard.platform.app
  - dockyard.platform.router_ports
attributes:
  action_group:
    support: full
    description: Takes its Consul connection options from C(module_defaults) for the group.
    membership:
      - dockyard.platform.consul
  check_mode:
    support: full
    description: Returns the plan (steps with counts, nodes and versions) and the spec's differences; changes nothing.
  diff_mode:
    support: full
    description: Shows the deployed spec before and the wanted spec after.
  idempotent:
    support: partial
    description:
      - A second run with the same spec reports no change and writes nothing.
      - O(state=restarted) restarts every time, as it is asked to.
options:
  name:
    description:
      - The app; letters and digits with V(-) or V(_) between them, at most 49.
      - Required unless O(marathon_app) names it.
    type: str
  state:
    description:
      - Whether the app runs. V(absent) drains and removes every version and the route.
      - V(restarted) replaces every instance with a fresh container of the same spec, by a roll like any new version
        (start new, healthy on every router, drain old; rolled back on failure). It is always a change; a later run
        with V(present) and the same options is not. An app that is not deployed is deployed as with V(present).
    type: str
    choices: [present, absent, restarted]
    default: present
  image:
    description: The image with an explicit tag or digest; V(latest) and untagged images are refused.
    type: str
  instances:
    description: How many instances.
    type: int
  cpus:
    description: CPUs per instance, the limit and the reservation (1.0 when unset).
    type: float
  mem:
    description: Memory per instance in MiB, the limit and the reservation (128 when unset; at least 6).
    type: int
  env:
    description: Environment variables.
    type: dict
  args:
    description: Arguments to the image's entry point.
    type: list
    elements: str
  labels:
    description: Container labels; keys under V(org.dockyard.) and V(dockyard.) are the platform's and refused.
    type: dict
  container_port:
    description: The port the app listens on in its container; needed by O(hosts), O(service_port) and an HTTP check.
    type: int
  service_port:
    description: The app's port on every router.
    type: int
  hosts:
    description: Virtual hosts the routers send to the app.
    type: list
    elements: str
  health:
    description: The app's health check, an HTTP path (checked by the routers) or a command (checked by Docker).
    type: dict
    suboptions:
      path:
        description: HTTP path; a new instance serves once the routers see it answer.
        type: str
      expect_status:
        description: The status a healthy instance answers (200 when unset).
        type: int
      body_contains:
        description: Text the answer's body must contain.
        type: str
      command:
        description: A command run in the container (Docker's health check); exit 0 is healthy.
        type: str
      interval:
        description: Time between checks (V(5s) when unset).
        type: str
      timeout:
        description: How long one check may take (V(2s) when unset).
        type: str
      grace_period:
        description: How long a starting instance may fail its checks (V(10s) when unset).
        type: str
      failures:
        description: Failed checks in a row before an instance is unhealthy (3 when unset).
        type: int
  constraints:
    description:
      - Where instances run, in Swarm's words; V(node.labels.zone==eu-1), V(node.labels.disk!=hdd),
        V(node.hostname==n1), V(max_per_node=1) (one per host), V(spread=node.labels.rack).
    type: list
    elements: str
  upgrade:
    description: How a rollout steps, and the drain window.
    type: dict
    suboptions:
      minimum_health_capacity:
        description: Share of O(instances) that must serve at every moment of a rollout (1.0 when unset).
        type: float
      maximum_over_capacity:
        description: Share of O(instances) that may run on top during a rollout (1.0 when unset).
        type: float
      drain_timeout:
        description: How long a stopping instance keeps finishing its requests after it left the routers (V(30s)).
        type: str
  stop_grace_period:
    description: How long the app takes to stop once it gets its stop signal (V(10s) when unset).
    type: str
  registry_auth:
    description: Credentials for the image's registry; never returned or logged.
    type: dict
    suboptions:
      username:
        description: The registry user.
        type: str
        required: true
      password:
        description: Its password.
        type: str
        required: true
  environment:
    description:
      - The environment (V(qa), V(staging), V(prod)...) whose configuration the app reads; C(deploy_app.yml) gives
        the inventory's. The app's configuration folder is O(config_kv_prefix)C(<environment>/<name>/), or
        O(config_kv_prefix)C(<name>/) without one.
    type: str
  config:
    description:
      - Configuration files rendered from Consul KV into every instance (see C(docs/app-config.md)). Every node's
        registrator renders each template with a token made for the app, which reads only the app's folder, into
        a directory mounted read-only on the destination's directory; a version's service is created only once
        every node it may run on has rendered its files.
      - A change of a key reaches running instances within seconds, as O(config[].on_change) says; a template
        that fails, or a change that would drop more than O(config[].max_drop), keeps the last good file and is
        reported by M(dockyard.platform.app_info). A change of a template is a new version, rolled as any other.
      - Each destination's directory is mounted whole, holding only the rendered files; directories may not nest.
    type: list
    elements: dict
    suboptions:
      contents:
        description: The template (consul-template's functions in Jinja2, as the renderer's); at most 64 KiB.
        type: str
        required: true
      destination:
        description: The file's absolute path inside the container, for example V(/etc/shop/shop.conf).
        type: str
        required: true
      name:
        description: The template's name in reports; the destination's file name when unset.
        type: str
      prefix:
        description: The KV folder it reads, within the app's own folder (which is the default).
        type: str
      on_change:
        description:
          - V(signal) sends O(config[].signal) to every running instance (no restart); V(restart) replaces them
            one at a time across the cluster, each drained first and the next only once its replacement serves.
        type: str
        choices: [signal, restart]
        default: signal
      signal:
        description: The signal for V(signal).
        type: str
        default: SIGHUP
      max_drop:
        description: The largest share of the file's entries one change may remove (V(0.5) or V(50%)).
        type: str
  config_kv_prefix:
    description:
      - The root of the apps' configuration folders in Consul KV (the consul
        role's C(consul_config_kv_prefix)).
    type: str
    default: config/
  config_token:
    description:
      - A Consul token that may write ACLs (the consul role's C(app-config-issuer)); with it the module makes the
        app's own configuration policy and token, and removes them with the app. Needed when O(config) is given.
    type: str
  marathon_app:
    description:
      - A Marathon app definition (JSON text or a mapping), translated into the options above; those options may be
        given beside it only where the definition does not set them.
    type: raw
  marathon_strict:
    description: Fail, before any change, when O(marathon_app) has a field with no equivalent here.
    type: bool
    default: true
  rollback:
    description: Deploy again the version that served before the live one (from the ledger); needs only O(name).
    type: bool
    default: false
  rollback_to:
    description: Deploy again the version of a recorded deployment (its deployment id or version id).
    type: str
  lock_timeout:
    description: How long to wait for another deployment of the app to end (V(0s) fails at once naming its holder).
    type: str
    default: 0s
  deadline:
    description: How long the whole deployment may take before it is rolled back.
    type: str
    default: 30m
  routers:
    description:
      - Router node names that must report every new instance UP before it counts as serving, besides every router
        that reports (the haproxy role's reporter). An empty list waits for the reporting routers only.
    type: list
    elements: str
    default: []
requirements:
  - python3-docker, python3-kazoo (Debian packages) on the Swarm manager
"""

EXAMPLES = r"""
- name: Deploy shop v2 with three instances behind shop.example.com
  dockyard.platform.app:
    name: shop
    image: registry.lab:5000/team/shop:git-4f2a9c1
    instances: 3
    cpus: 0.5
    mem: 256
    container_port: 8080
    hosts: [shop.example.com]
    health: {path: /healthz, interval: 2s}
    upgrade: {minimum_health_capacity: 1.0, maximum_over_capacity: 0.5, drain_timeout: 20s}
    zookeeper_hosts: zk1:2181,zk2:2181,zk3:2181

- name: Deploy shop with its page rendered from config/prod/shop/ and reloaded (SIGHUP) when a key changes
  dockyard.platform.app:
    name: shop
    image: registry.lab:5000/team/shop:git-4f2a9c1
    instances: 3
    container_port: 8080
    environment: prod
    config:
      - destination: /etc/shop/shop.conf
        contents: |
          greeting = {{ key "config/prod/shop/greeting" }}
          {% for pair in tree("config/prod/shop/features") %}{{ pair.key }} = {{ pair.value }}
          {% endfor %}
        max_drop: 50%
    config_token: "{{ app_config_issuer_token }}"
    zookeeper_hosts: zk1:2181

- name: Deploy a Marathon app definition kept in the repository
  dockyard.platform.app:
    marathon_app: "{{ lookup('ansible.builtin.file', 'marathon/web.json') }}"
    zookeeper_hosts: zk1:2181

- name: Fresh containers for every instance of shop, rolled like a new version
  dockyard.platform.app:
    name: shop
    image: registry.lab:5000/team/shop:git-4f2a9c1
    instances: 3
    container_port: 8080
    hosts: [shop.example.com]
    health: {path: /healthz}
    state: restarted
    zookeeper_hosts: zk1:2181

- name: Back to the version before
  dockyard.platform.app:
    name: shop
    rollback: true
    zookeeper_hosts: zk1:2181
"""

RETURN = r"""
name:
  description: The app.
  returned: success
  type: str
  sample: shop
deployment:
  description: The id of the deployment this run recorded in the ledger; none when nothing changed.
  returned: success and failure
  type: str
  sample: 20261201T130500Z-1a2b3c4d
steps:
  description: What the run did, in order, each with its action, count, version, start and duration in seconds.
  returned: success and failure
  type: list
  elements: dict
  sample: [{action: start, count: 3, version: 4f2a9c1e0b7d, started: "2026-12-01T13:05:01.12Z", duration: 9.3}]
versions:
  description: Each version service at the end, with its instances asked for and serving.
  returned: success
  type: list
  elements: dict
plan:
  description:
    - In check mode, the steps a run would take, with the versions as they are now.
    - Each step has its action, count, version and nodes; for V(start) and V(wait) the nodes eligible for the new
      version, for V(drain) and V(remove) those its instances run on now (Swarm picks which of them a drain stops).
  returned: check mode
  type: dict
marathon:
  description: With O(marathon_app), the fields it had no equivalent for and where meanings differ.
  returned: when O(marathon_app) is given
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.dockyard.platform.plugins.module_utils._app import (
    CONNECTION_ARGUMENT_SPEC,
    CONNECTION_REQUIRED_TOGETHER,
    deployer_from_params,
)
from ansible_collections.dockyard.platform.plugins.module_utils._consul import (
    ConfigError,
    ConsulError,
    client_from_params,
)
from ansible_collections.dockyard.platform.plugins.module_utils._route import ROUTER_PORTS_ARGUMENT_SPEC
from ansible_collections.dockyard.platform.plugins.module_utils.app.deployer import DeployError
from ansible_collections.dockyard.platform.plugins.module_utils.app.ledger import LedgerError
from ansible_collections.dockyard.platform.plugins.module_utils.app.marathon import translate
from ansible_collections.dockyard.platform.plugins.module_utils.app.spec import OPTION_KEYS, SpecError, parse_spec
from ansible_collections.dockyard.platform.plugins.module_utils.app.swarm import SwarmError
from ansible_collections.dockyard.platform.plugins.module_utils.appconfig.tokens import AppTokens
from ansible_collections.dockyard.platform.plugins.module_utils.daemon.config import duration


def argument_spec():
    spec = dict(
        name=dict(type="str"),
        state=dict(type="str", choices=["present", "absent", "restarted"], default="present"),
        image=dict(type="str"),
        instances=dict(type="int"),
        cpus=dict(type="float"),
        mem=dict(type="int"),
        env=dict(type="dict"),
        args=dict(type="list", elements="str"),
        labels=dict(type="dict"),
        container_port=dict(type="int"),
        service_port=dict(type="int"),
        hosts=dict(type="list", elements="str"),
        health=dict(
            type="dict",
            options=dict(
                path=dict(type="str"),
                expect_status=dict(type="int"),
                body_contains=dict(type="str"),
                command=dict(type="str"),
                interval=dict(type="str"),
                timeout=dict(type="str"),
                grace_period=dict(type="str"),
                failures=dict(type="int"),
            ),
        ),
        constraints=dict(type="list", elements="str"),
        upgrade=dict(
            type="dict",
            options=dict(
                minimum_health_capacity=dict(type="float"),
                maximum_over_capacity=dict(type="float"),
                drain_timeout=dict(type="str"),
            ),
        ),
        stop_grace_period=dict(type="str"),
        registry_auth=dict(
            type="dict",
            no_log=False,
            options=dict(
                username=dict(type="str", required=True), password=dict(type="str", required=True, no_log=True)
            ),
        ),
        environment=dict(type="str"),
        config=dict(
            type="list",
            elements="dict",
            options=dict(
                contents=dict(type="str", required=True),
                destination=dict(type="str", required=True),
                name=dict(type="str"),
                prefix=dict(type="str"),
                on_change=dict(type="str", choices=["signal", "restart"], default="signal"),
                signal=dict(type="str", default="SIGHUP"),
                max_drop=dict(type="str"),
            ),
        ),
        config_kv_prefix=dict(type="str", default="config/"),
        config_token=dict(type="str", no_log=True),
        marathon_app=dict(type="raw"),
        marathon_strict=dict(type="bool", default=True),
        rollback=dict(type="bool", default=False),
        rollback_to=dict(type="str"),
        lock_timeout=dict(type="str", default="0s"),
        deadline=dict(type="str", default="30m"),
        routers=dict(type="list", elements="str", default=[]),
    )
    spec.update(CONNECTION_ARGUMENT_SPEC)
    spec.update(ROUTER_PORTS_ARGUMENT_SPEC)
    return spec


def _given(value):
    """The option as the spec takes it: suboptions Ansible filled with None are left out, so defaults apply."""
    if isinstance(value, dict):
        return {key: _given(item) for key, item in value.items() if item is not None}
    return value


def spec_options(params) -> dict:
    return {key: _given(params[key]) for key in OPTION_KEYS if params.get(key) is not None}


def wanted_spec(params):
    """(the AppSpec the options ask for, the Marathon translation's report or None); raises SpecError."""
    if params["marathon_app"] is None:
        return parse_spec(spec_options(params)), None
    translation = translate(params["marathon_app"], params["marathon_strict"], spec_options(params))
    report = {"unsupported": list(translation.unsupported), "notes": list(translation.notes)}
    return translation.spec, report


class App:
    def __init__(self, module):
        self.module = module
        self.params = module.params

    def run(self):
        params = self.params
        lock_timeout = duration(params["lock_timeout"], "lock_timeout")
        deadline = duration(params["deadline"], "deadline")
        port_range = (params["service_port_range"]["first"], params["service_port_range"]["last"])
        options = dict(
            routers=tuple(params["routers"]),
            reserved_ports=tuple(params["reserved_ports"]),
            service_port_range=port_range,
        )
        if params["config_token"]:
            options["tokens"] = AppTokens(client_from_params({**params, "token": params["config_token"]}))
        with deployer_from_params(params, **options) as deployer:
            if params["rollback"] or params["rollback_to"]:
                self.roll_back(deployer, lock_timeout, deadline)
            if params["state"] == "absent":
                spec, result = self.removed(deployer), {}
            else:
                spec, marathon = wanted_spec(params)
                result = {} if marathon is None else {"marathon": marathon}
            result["name"] = spec.name
            if self.module.check_mode:
                plan = deployer.plan(spec, params["state"]).to_dict()
                result.update(self.diff(plan))
                self.module.exit_json(changed=plan["changed"], plan=plan, **result)
            outcome = deployer.apply(spec, params["state"], lock_timeout=lock_timeout, deadline=deadline)
            self.module.exit_json(**outcome.to_dict(), **result)

    def removed(self, deployer):
        """The spec state=absent removes: the app's own, as deployed; nothing to do when it has none."""
        if not self.params["name"]:
            self.module.fail_json(msg="state=absent needs name")
        spec = deployer.current_spec(self.params["name"])
        if spec is None:
            self.module.exit_json(changed=False, name=self.params["name"], steps=[], versions=[])
        return spec

    def roll_back(self, deployer, lock_timeout, deadline):
        name = self.params["name"]
        if not name:
            self.module.fail_json(msg="rollback and rollback_to need name")
        reference = self.params["rollback_to"]
        if self.module.check_mode:
            target = deployer.rollback_target(name, reference)
            plan = deployer.plan(parse_spec(target.spec), as_recorded=True).to_dict()
            self.module.exit_json(changed=plan["changed"], name=name, plan=plan, rollback_to=target.deployment)
        outcome = deployer.roll_back(name, reference, lock_timeout=lock_timeout, deadline=deadline)
        self.module.exit_json(name=name, **outcome.to_dict())

    def diff(self, plan) -> dict:
        if not self.module._diff or not plan["diff"]:
            return {}
        return {"diff": {"before": plan["diff"]["before"], "after": plan["diff"]["after"]}}


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_together=CONNECTION_REQUIRED_TOGETHER,
        required_one_of=[("name", "marathon_app")],
        mutually_exclusive=[("rollback", "rollback_to"), ("marathon_app", "rollback"), ("marathon_app", "rollback_to")],
        supports_check_mode=True,
    )
    try:
        App(module).run()
    except SpecError as error:
        module.fail_json(msg=str(error), field=error.field)
    except DeployError as error:
        module.fail_json(msg=str(error), deployment=error.deployment, steps=list(error.steps))
    except (ConfigError, ConsulError, LedgerError, SwarmError) as error:
        module.fail_json(msg=str(error))


if __name__ == "__main__":
    main()
