# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lookup dockyard.platform.environment_dir, through Ansible's own templating as a role default uses it."""

from __future__ import annotations

import os
import string

import pytest
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible_collections.dockyard.platform.plugins.lookup.environment_dir import (
    EnvironmentNameError,
    environment_dir,
    environment_name,
    inventory_directory,
    secrets_root,
)
from hypothesis import given
from hypothesis import strategies as st

LOOKUP = "{{ lookup('dockyard.platform.environment_dir') }}"


def looked_up(**variables) -> str:
    """The lookup's answer for these inventory variables; strings are trusted as the inventory's are."""
    trusted = {name: trust_as_template(value) if isinstance(value, str) else value for name, value in variables.items()}
    return Templar(loader=DataLoader(), variables=trusted).template(trust_as_template(LOOKUP))


def test_the_environment_defaults_to_the_inventory_directory_name_under_the_default_root():
    home = os.path.expanduser("~")
    assert looked_up(inventory_dir="/srv/inventories/qa") == f"{home}/.dockyard/environments/qa"


def test_the_environment_and_the_root_can_be_set_and_are_templated():
    found = looked_up(
        inventory_dir="/srv/inventories/qa",
        dockyard_environment="{{ 'stag' ~ 'ing' }}",
        dockyard_secrets_root="{{ '/var/lib' }}/secrets/",
    )
    assert found == "/var/lib/secrets/staging"


def test_the_implicit_localhost_takes_the_name_of_its_one_inventory_source(tmp_path):
    inventory = tmp_path / "prod"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text("all: {}\n")
    root = str(tmp_path / "root")
    by_directory = looked_up(ansible_inventory_sources=[str(inventory)], dockyard_secrets_root=root)
    by_file = looked_up(ansible_inventory_sources=[str(inventory / "hosts.yml")], dockyard_secrets_root=root)
    assert by_directory == by_file == f"{root}/prod"
    named = looked_up(ansible_inventory_sources=["/a", "/b"], dockyard_environment="qa", dockyard_secrets_root=root)
    assert named == f"{root}/qa"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"inventory_dir": "/srv/inventories/Lab"}, "dockyard_environment (default: the name of /srv/inventories/Lab)"),
        ({"inventory_dir": "/srv/qa", "dockyard_environment": "../prod"}, "dockyard_environment is '../prod'"),
        ({"inventory_dir": "/srv/qa", "dockyard_environment": "qa\n"}, "dockyard_environment is 'qa\\n'"),
        ({"inventory_dir": "/srv/qa", "dockyard_secrets_root": "secrets"}, "dockyard_secrets_root is 'secrets'"),
        ({"ansible_inventory_sources": ["/a", "/b"]}, "dockyard_environment is not set"),
        ({"inventory_dir": "/srv/qa", "dockyard_environment": ""}, "dockyard_environment is ''"),
        ({"inventory_dir": "/srv/qa", "dockyard_secrets_root": ""}, "dockyard_secrets_root is ''"),
    ],
)
def test_a_bad_name_or_root_is_refused_naming_the_variable(variables, message):
    with pytest.raises(AnsibleError) as refused:
        looked_up(**variables)
    assert message in str(refused.value)


def test_the_lookup_takes_no_terms():
    templar = Templar(loader=DataLoader(), variables={"inventory_dir": "/srv/qa"})
    with pytest.raises(AnsibleError, match="takes no terms"):
        templar.template(trust_as_template("{{ lookup('dockyard.platform.environment_dir', 'consul') }}"))


NAMES = st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,62}\Z")
FIRST = set(string.ascii_lowercase + string.digits)


def is_environment_name(text: str) -> bool:
    """The grammar written out by hand, as the oracle of the regular expression."""
    return 1 <= len(text) <= 63 and text[0] in FIRST and set(text) <= FIRST | {"-", "_"}


@given(NAMES)
def test_every_name_of_the_grammar_is_kept_as_it_is(name):
    assert environment_name(name, "/srv/inventory") == name
    assert environment_name(None, f"/srv/{name}") == name


@given(st.one_of(st.text(max_size=80), NAMES.map(lambda name: name + "\n"), NAMES.map(str.upper)))
def test_a_name_outside_the_grammar_is_refused_naming_the_variable(name):
    if is_environment_name(name):
        assert environment_name(name, "/srv/inventory") == name
    else:
        with pytest.raises(EnvironmentNameError, match=r"^dockyard_environment is "):
            environment_name(name, "/srv/inventory")


@given(NAMES, st.sampled_from(["/", "/srv/secrets", "/srv/secrets/", "~/.dockyard/environments"]))
def test_an_environment_directory_is_one_level_below_the_root(name, root):
    directory = environment_dir(secrets_root(root), name)
    assert os.path.dirname(directory) == secrets_root(root)
    assert os.path.normpath(directory) == directory


def test_an_inventory_file_names_the_environment_after_its_directory(tmp_path):
    hosts = tmp_path / "staging" / "hosts.yml"
    hosts.parent.mkdir()
    hosts.write_text("all: {}\n")
    assert inventory_directory(None, [str(hosts)]) == str(hosts.parent)
    assert inventory_directory("/srv/qa", [str(hosts)]) == "/srv/qa"
