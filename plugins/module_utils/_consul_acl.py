# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Consul ACL policies and tokens kept as given: the plain Python behind the consul_acl module.

Private to this collection. A plan reads every given policy (by name) and
token (by accessor ID), and lists what is missing or differs; applying it
writes policies first, since tokens name them. Policies and tokens that are
not given are left alone. A token is created with the accessor and secret IDs
given, and only its description and policies are ever updated: a stored
secret that no longer matches the token is an error, never overwritten.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field

from ansible_collections.dockyard.platform.plugins.module_utils.daemon.consul import ConsulError

# Consul's own grammar for a policy name.
POLICY_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_DESCRIPTION = 512
MAX_RULES = 65536


class AclError(Exception):
    pass


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    rules: str


@dataclass(frozen=True)
class Token:
    accessor_id: str
    secret_id: str
    description: str
    policies: tuple


@dataclass
class Plan:
    """What differs. Each write pairs the desired item with the ID of the one it updates ("" to create)."""

    policy_writes: list = field(default_factory=list)
    token_writes: list = field(default_factory=list)
    diff_before: list = field(default_factory=list)
    diff_after: list = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.policy_writes or self.token_writes)

    def names(self, kind: str, created: bool) -> list:
        writes = self.policy_writes if kind == "policies" else self.token_writes
        return [_label(item) for item, existing in writes if (existing == "") == created]


def _label(item) -> str:
    return item.name if isinstance(item, Policy) else item.description


def _text(value, where: str, limit: int) -> str:
    if not isinstance(value, str):
        raise AclError(f"{where}: expected a string, got {type(value).__name__}")
    if len(value) > limit or any(ord(char) < 32 and char not in "\t\n" for char in value):
        raise AclError(f"{where}: expected at most {limit} printable characters")
    return value


def _name(value, where: str) -> str:
    if not isinstance(value, str) or not POLICY_NAME.fullmatch(value):
        raise AclError(f"{where}: expected a policy name of 1-128 letters, digits, '-' or '_', got {value!r}")
    return value


def _rules_text(rules, where: str) -> str:
    """Rules as Consul stores them: a mapping as JSON with sorted keys, a string as it is (HCL or JSON)."""
    if isinstance(rules, dict):
        rules = json.dumps(rules, sort_keys=True)
    return _text(rules, where, MAX_RULES)


def parse_policies(items) -> list:
    policies, seen = [], set()
    for index, item in enumerate(items or []):
        where = f"policies[{index}]"
        if not isinstance(item, dict) or not {"name", "rules"} <= set(item) <= {"name", "rules", "description"}:
            raise AclError(f"{where}: expected a mapping with name, rules and an optional description")
        name = _name(item["name"], f"{where}.name")
        if name in seen:
            raise AclError(f"{where}.name: policy {name} is given twice")
        seen.add(name)
        description = _text(item.get("description") or "", f"{where}.description", MAX_DESCRIPTION)
        policies.append(Policy(name, description, _rules_text(item["rules"], f"{where}.rules")))
    return policies


def parse_tokens(items) -> list:
    tokens, seen = [], set()
    for index, item in enumerate(items or []):
        where = f"tokens[{index}]"
        expected = {"accessor_id", "secret_id", "description", "policies"}
        if not isinstance(item, dict) or set(item) != expected:
            raise AclError(f"{where}: expected a mapping with exactly {', '.join(sorted(expected))}")
        for key in ("accessor_id", "secret_id"):
            # Never the value itself in the message: the secret ID is a credential.
            if not isinstance(item[key], str) or not UUID.fullmatch(item[key]):
                raise AclError(f"{where}.{key}: expected a lower-case UUID")
        if item["accessor_id"] in seen:
            raise AclError(f"{where}.accessor_id: {item['accessor_id']} is given twice")
        seen.add(item["accessor_id"])
        if not isinstance(item["policies"], list):
            raise AclError(f"{where}.policies: expected a list of policy names")
        names = tuple(sorted({_name(name, f"{where}.policies") for name in item["policies"]}))
        description = _text(item["description"], f"{where}.description", MAX_DESCRIPTION)
        tokens.append(Token(item["accessor_id"], item["secret_id"], description, names))
    return tokens


def _read(client, path: str, what: str):
    """The JSON of an ACL object, or None when Consul has none (404, or 403 "ACL not found" as 1.8 answers)."""
    answer = client.request("GET", path, accept=(403,))
    if answer.status == 404 or (answer.status == 403 and b"ACL not found" in answer.body):
        return None
    if answer.status != 200:
        raise ConsulError(f"reading {what}: consul answered HTTP {answer.status}", answer.status)
    return answer.json()


def _same_rules(stored: str, wanted: str) -> bool:
    """Rules written as JSON count as the same when they parse to the same structure."""
    if stored == wanted:
        return True
    try:
        return json.loads(stored) == json.loads(wanted)
    except ValueError:
        return False


def plan(client, policies: list, tokens: list) -> Plan:
    result = Plan()
    for policy in policies:
        current = _read(client, f"/v1/acl/policy/name/{urllib.parse.quote(policy.name)}", f"policy {policy.name}")
        if current is None:
            result.policy_writes.append((policy, ""))
            result.diff_after.append(f"policy {policy.name}: {policy.description} {policy.rules}")
        elif current.get("Description", "") != policy.description or not _same_rules(
            current.get("Rules", ""), policy.rules
        ):
            result.policy_writes.append((policy, current["ID"]))
            result.diff_before.append(f"policy {policy.name}: {current.get('Description', '')} {current.get('Rules')}")
            result.diff_after.append(f"policy {policy.name}: {policy.description} {policy.rules}")
    for token in tokens:
        current = _read(client, f"/v1/acl/token/{token.accessor_id}", f"token {token.description!r}")
        wanted = f"token {token.description!r} ({token.accessor_id}): policies {', '.join(token.policies)}"
        if current is None:
            result.token_writes.append((token, ""))
            result.diff_after.append(wanted)
            continue
        stored_secret = current.get("SecretID")
        # Consul shows "<hidden>" instead to a token without acl write; only a real ID can differ.
        if isinstance(stored_secret, str) and UUID.fullmatch(stored_secret) and stored_secret != token.secret_id:
            raise AclError(
                f"token {token.description!r} (accessor {token.accessor_id}) exists in Consul with another secret"
                " than the one given: restore the stored secret, or delete the token in Consul to have it made again"
            )
        names = tuple(sorted(entry.get("Name", "") for entry in current.get("Policies") or []))
        if current.get("Description", "") != token.description or names != token.policies:
            result.token_writes.append((token, token.accessor_id))
            result.diff_before.append(
                f"token {current.get('Description', '')!r} ({token.accessor_id}): policies {', '.join(names)}"
            )
            result.diff_after.append(wanted)
    return result


def apply(client, result: Plan) -> None:
    """Writes the plan, then reads every written policy and token back: a write Consul did not keep is an error."""
    _write(client, result)
    written = [item for item, _existing in result.policy_writes + result.token_writes]
    left = plan(
        client,
        [item for item in written if isinstance(item, Policy)],
        [item for item in written if isinstance(item, Token)],
    )
    if left.changed:
        names = [_label(item) for item, _existing in left.policy_writes + left.token_writes]
        raise AclError(f"Consul acknowledged but does not hold the written {', '.join(names)}: read back as before")


def _write(client, result: Plan) -> None:
    for policy, existing in result.policy_writes:
        body = {"Name": policy.name, "Description": policy.description, "Rules": policy.rules}
        client.request("PUT", f"/v1/acl/policy/{existing}" if existing else "/v1/acl/policy", body=body)
    for token, existing in result.token_writes:
        body = {
            "AccessorID": token.accessor_id,
            "SecretID": token.secret_id,
            "Description": token.description,
            "Policies": [{"Name": name} for name in token.policies],
        }
        client.request("PUT", f"/v1/acl/token/{existing}" if existing else "/v1/acl/token", body=body)
