# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each app's own Consul token: a policy that reads the app's configuration prefixes and nothing else.

The app module makes them with a token that may write ACLs (the consul role's
app-config-issuer), kept apart from the deployer's because in Consul an ACL
writer can grant itself anything. The policy and the token are found again by
name (layout.app_policy_name), so a rerun reuses them and a removal finds them.
"""

from __future__ import annotations

import json
import re

from ..daemon.consul import ConsulError
from . import layout

# A token's secret as Consul gives it to a token that may write ACLs; one that may only read them gets "<hidden>".
_SECRET = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def policy_rules(prefixes) -> str:
    """The policy's rules: read on each prefix. Consul takes JSON where it takes HCL."""
    rules = {"key_prefix": {prefix: {"policy": "read"} for prefix in sorted(set(prefixes))}}
    return json.dumps(rules, sort_keys=True, separators=(",", ":"))


class AppTokens:
    """Creates, updates and removes apps' configuration policies and tokens through one Consul client."""

    def __init__(self, client):
        self.client = client

    def _policy(self, name: str) -> dict | None:
        # Listed, not read by name: Consul 1.8 answers a missing name with 403 "ACL not found", as it does a refusal.
        listed = self.client.request("GET", "/v1/acl/policies").json() or []
        found = next((policy for policy in listed if policy.get("Name") == name), None)
        return None if found is None else self.client.request("GET", f"/v1/acl/policy/{found['ID']}").json()

    def _tokens(self, policy_id: str, name: str) -> list:
        answer = self.client.request("GET", "/v1/acl/tokens", params={"policy": policy_id})
        return [token for token in answer.json() or [] if token.get("Description") == name]

    def ensure(self, app: str, environment: str | None, prefixes) -> tuple:
        """(the app's token secret, whether anything was created or changed); raises ConsulError."""
        name = layout.app_policy_name(app, environment)
        rules = policy_rules(prefixes)
        body = {"Name": name, "Description": f"Dockyard: {app} reads its configuration", "Rules": rules}
        policy = self._policy(name)
        changed = False
        if policy is None:
            policy = self.client.request("PUT", "/v1/acl/policy", body=body).json()
            changed = True
        elif policy.get("Rules") != rules:
            policy = self.client.request("PUT", f"/v1/acl/policy/{policy['ID']}", body=body).json()
            changed = True
        found = self._tokens(policy["ID"], name)
        if found:
            token = self.client.request("GET", f"/v1/acl/token/{found[0]['AccessorID']}").json()
        else:
            token = self.client.request(
                "PUT", "/v1/acl/token", body={"Description": name, "Policies": [{"ID": policy["ID"]}]}
            ).json()
            changed = True
        secret = token.get("SecretID") if isinstance(token, dict) else None
        if not isinstance(secret, str) or not _SECRET.fullmatch(secret):
            raise ConsulError(f"Consul did not return the secret of token {name} (does the token have acl:write?)")
        return secret, changed

    def remove(self, app: str, environment: str | None) -> bool:
        """Deletes the app's tokens and policy; False when there were none."""
        name = layout.app_policy_name(app, environment)
        policy = self._policy(name)
        if policy is None:
            return False
        for token in self._tokens(policy["ID"], name):
            self.client.request("DELETE", f"/v1/acl/token/{token['AccessorID']}")
        self.client.request("DELETE", f"/v1/acl/policy/{policy['ID']}")
        return True
