# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The action dockyard.platform.secret_file: one secret file on the controller, vault-encrypted when it can be.

It runs on the controller only (no connection, no module on a host): the file lives in the environment's
directory there, and the run's vault secrets are there. Its documentation is plugins/modules/secret_file.py.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible_collections.dockyard.platform.plugins.module_utils._secret_file import (
    Found,
    Plan,
    SecretFileError,
    check_path,
    plan,
)
from ansible_collections.dockyard.platform.plugins.plugin_utils import _secret_store as store

ARGUMENT_SPEC = dict(
    path=dict(type="str", required=True),
    content=dict(type="str", no_log=True),
    force=dict(type="bool", default=True),
    vault_id=dict(type="str"),
)


def described(found: Found, changed_content: bool = False) -> str:
    """A file's state for --diff, without its content."""
    if not found.exists:
        return "absent\n"
    content = "(hidden, changed)" if changed_content else "(hidden)"
    mode = "unknown" if found.mode is None else f"{found.mode:04o}"
    return f"content: {content}\nencrypted: {'yes' if found.encrypted else 'no'}\nmode: {mode}\n"


def after(found: Found, planned: Plan, encrypt: bool) -> Found:
    """The file as the plan leaves it."""
    if planned.content is not None:
        return Found(planned.content, encrypted=encrypt, mode=0o600)
    if planned.chmod:
        return Found(found.content, encrypted=found.encrypted, mode=0o600)
    return found


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        vault_id = args["vault_id"]
        if vault_id is None and "dockyard_secrets_vault_id" in task_vars:
            vault_id = self._templar.template(task_vars["dockyard_secrets_vault_id"]) or None
        check = bool(self._task.check_mode)
        try:
            path = check_path(args["path"])
            vault = store.Vault(self._loader._vault.secrets, vault_id)
            found = store.read(path, vault)
            desired = None if args["content"] is None else args["content"].encode("utf-8")
            planned = plan(found, desired, force=args["force"], encrypt=vault.available)
            if planned.changed and not check:
                self._apply(path, found, planned, vault)
        except SecretFileError as error:
            result.update(failed=True, msg=str(error))
            return result
        left = after(found, planned, vault.available)
        result.update(
            changed=planned.changed,
            path=path,
            exists=left.exists,
            encrypted=left.encrypted,
            actions=list(planned.actions),
        )
        if "encrypt it in place" in planned.actions:
            result["warnings"] = [
                f"{'Would encrypt' if check else 'Encrypted'} {path} in place with ansible-vault "
                f"(vault id {vault.vault_id}): it was plain text."
            ]
        if self._task.diff and planned.changed:
            result["diff"] = dict(
                before_header=path,
                after_header=path,
                before=described(found),
                after=described(left, changed_content=found.exists and "replace its content" in planned.actions),
            )
        return result

    @staticmethod
    def _apply(path: str, found: Found, planned: Plan, vault: store.Vault) -> None:
        if planned.content is None:
            store.set_mode(path)
        elif found.exists:
            store.write(path, planned.content, vault)
        elif not store.create(path, planned.content, vault):
            raise SecretFileError(f"{path} was created by another writer while this task ran: run it again")
