"""Every role keeps the contract in STYLE.md: inputs prefixed with the role's
name, each declared in meta/argument_specs.yml with the same default."""

from pathlib import Path

import pytest
import yaml

ROLES = sorted(path for path in (Path(__file__).parents[2] / "roles").iterdir() if path.is_dir())


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {} if path.exists() else {}


@pytest.mark.parametrize("role", ROLES, ids=lambda path: path.name)
def test_role_declares_every_default_with_its_prefix(role):
    defaults = load(role / "defaults" / "main.yml")
    specs = load(role / "meta" / "argument_specs.yml")
    assert "main" in specs.get("argument_specs", {}), f"{role.name}: meta/argument_specs.yml has no main entry point"
    options = specs["argument_specs"]["main"].get("options", {})
    for name, value in defaults.items():
        assert name.startswith(f"{role.name}_"), f"{role.name}: default {name} lacks the role's prefix"
        assert name in options, f"{role.name}: default {name} is not in meta/argument_specs.yml"
        if "default" in options[name]:
            assert options[name]["default"] == value, f"{role.name}: {name} default differs from defaults/main.yml"
    for name, spec in options.items():
        assert spec.get("description"), f"{role.name}: option {name} has no description"


def test_lab_inventory_reaches_hosts_through_docker():
    lab = Path(__file__).parents[2] / "inventories" / "lab"
    group_vars = load(lab / "group_vars" / "lab.yml")
    assert group_vars["ansible_connection"] == "community.docker.docker"
    hosts = load(lab / "hosts.yml")["all"]["children"]["lab"]["hosts"]
    assert len(hosts) >= 3, "the lab needs three hosts for a quorum"
