# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The action dockyard.platform.inventory_shape: what it templates of a real inventory, and the task site.yml imports,
run by ansible-playbook as an operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.vars.hostvars import HostVars
from ansible.vars.manager import VariableManager
from ansible_collections.dockyard.platform.plugins.action.inventory_shape import read_values

ROOT = Path(__file__).resolve().parents[4]
TASKS = ROOT / "playbooks" / "tasks" / "inventory_shape.yml"

INVENTORY = """
all:
  vars:
    # A vaulted password whose vault is not loaded: the check must not template it.
    registry_users: [{name: deploy, password: "{{ vault_registry_password }}"}]
  children:
    scheduler_masters: {hosts: {DB1: {}}}
    scheduler_agents: {hosts: {Agent_2: {}, web-01: {}}}
    docker_hosts: {children: {scheduler_masters: {}, scheduler_agents: {}}}
    routers: {children: {scheduler_masters: {}, scheduler_agents: {}}}
    zookeeper: {children: {scheduler_masters: {}, scheduler_agents: {}}}
    consul_servers: {children: {scheduler_masters: {}, scheduler_agents: {}}}
    registry: {hosts: {web-01: {}}}
"""


def write_inventory(directory: Path, hosts: str, host_vars: dict | None = None) -> Path:
    (directory / "hosts.yml").write_text(hosts)
    for host, variables in (host_vars or {}).items():
        (directory / "host_vars").mkdir(exist_ok=True)
        (directory / "host_vars" / f"{host}.yml").write_text(variables)
    return directory


def loaded(directory: Path) -> tuple:
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(directory / "hosts.yml")])
    variables = VariableManager(loader=loader, inventory=inventory)
    return inventory.get_groups_dict(), HostVars(inventory=inventory, variable_manager=variables, loader=loader)


def test_only_what_the_inventory_sets_of_the_checked_variables_is_read_and_templated(tmp_path):
    write_inventory(tmp_path, INVENTORY, {"web-01": 'haproxy_http_port: "{{ 8000 + 80 }}"\nregistry_port: 5001\n'})
    values, warnings = read_values(*loaded(tmp_path))
    assert warnings == []
    assert values == {"DB1": {}, "Agent_2": {}, "web-01": {"haproxy_http_port": 8080, "registry_port": 5001}}


def test_a_variable_made_from_facts_is_named_and_left_to_its_default(tmp_path):
    facts = {"Agent_2": "renderer_status_port: \"{{ ansible_facts['default_ipv4']['address'] | length }}\"\n"}
    write_inventory(tmp_path, INVENTORY, facts)
    values, warnings = read_values(*loaded(tmp_path))
    assert values["Agent_2"] == {}
    (warning,) = warnings
    assert warning.startswith("host Agent_2: renderer_status_port could not be templated on the controller")


def run_check(inventory: Path, *options: str) -> subprocess.CompletedProcess:
    playbook = inventory / "check.yml"
    playbook.write_text(
        "- name: Check the shape\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - name: The task site.yml imports\n      ansible.builtin.import_tasks: {TASKS}\n"
    )
    environment = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".cache" / "collections"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
    }
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory / "hosts.yml"), *options]
    return subprocess.run([*command, str(playbook)], capture_output=True, text=True, env=environment, check=False)


def task_result(run: subprocess.CompletedProcess) -> dict:
    return json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_a_shape_that_works_passes_in_check_mode_too(tmp_path):
    run = run_check(write_inventory(tmp_path, INVENTORY), "--check")
    assert run.returncode == 0, run.stdout + run.stderr
    result = task_result(run)
    assert result["errors"] == [] and not result["changed"]


def test_a_shape_that_cannot_work_fails_listing_every_problem(tmp_path):
    broken = INVENTORY.replace("consul_servers: {children: {scheduler_masters: {}, scheduler_agents: {}}}", "")
    run = run_check(write_inventory(tmp_path, broken, {"DB1": "zookeeper_client_port: 80\n"}))
    assert run.returncode == 2
    result = task_result(run)
    assert result["failed"] and len(result["errors"]) == 2
    assert result["msg"].startswith("The inventory's shape cannot work (2 problems); nothing was changed:\n- group ")
    assert "- host DB1: port 80 is bound by zookeeper_client_port on 0.0.0.0 and haproxy_http_port" in result["msg"]
