# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lookups' tests template through Ansible's own Templar, which finds the lookups by their collection names."""

import sys
from pathlib import Path

import pytest
from ansible.plugins.loader import init_plugin_loader
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

COLLECTIONS = Path(__file__).resolve().parents[4] / ".cache" / "collections"


@pytest.fixture(scope="module", autouse=True)
def collection_loader():
    """Ansible's collection loader, as ansible-playbook runs it, for each test module of the lookups only.

    The suite imports the collection as a plain package (pytest's pythonpath); the loader refuses those modules,
    so they step aside while it runs and come back after it."""
    plain = {name: module for name, module in sys.modules.items() if name.split(".")[0] == "ansible_collections"}
    for name in plain:
        del sys.modules[name]
    init_plugin_loader([str(COLLECTIONS)])
    yield
    _AnsibleCollectionFinder._remove()
    for name in [name for name in sys.modules if name.split(".")[0] == "ansible_collections"]:
        del sys.modules[name]
    sys.modules.update(plain)
