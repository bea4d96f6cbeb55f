# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The controller side of a secret file: the run's vault, reading (decrypting) and writing (encrypting) on disk.

Shared by the action dockyard.platform.secret_file and the lookup dockyard.platform.secret; what to write is
decided by plugins/module_utils/_secret_file.py. Files are written 0600 through a temporary file in the same
directory and a rename, so a reader never sees half a secret; missing directories are made 0700.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.parsing.vault import VaultLib, is_encrypted, match_encrypt_secret, parse_vaulttext_envelope
from ansible_collections.dockyard.platform.plugins.module_utils._secret_file import (
    DIRECTORY_MODE,
    FILE_MODE,
    Found,
    SecretFileError,
)

PASS_THE_PASSWORD = "pass it with --vault-password-file, --vault-id or ANSIBLE_VAULT_PASSWORD_FILE"


class Vault:
    """The vault secrets this run loaded, and the one new files are encrypted with.

    The encrypting secret is the one named by `vault_id` (the variable dockyard_secrets_vault_id), else by
    Ansible's vault_encrypt_identity setting, else the first the run loaded. No secret: files stay plain."""

    def __init__(self, secrets: list | None, vault_id: str | None = None):
        self._lib = VaultLib(list(secrets or []))
        self.vault_id = None
        self._secret = None
        if not self._lib.secrets:
            if vault_id:
                raise SecretFileError(
                    f"dockyard_secrets_vault_id is {vault_id!r}, but this run has no vault password: "
                    f"{PASS_THE_PASSWORD}"
                )
            return
        wanted, origin = (
            (vault_id, "dockyard_secrets_vault_id")
            if vault_id
            else (
                C.DEFAULT_VAULT_ENCRYPT_IDENTITY,
                "the vault_encrypt_identity setting",
            )
        )
        known = [identity for identity, _secret in self._lib.secrets]
        if wanted and wanted not in known:
            raise SecretFileError(
                f"{origin} is {wanted!r}, but this run has no vault password of that id (it has: {', '.join(known)})"
            )
        self.vault_id, self._secret = match_encrypt_secret(self._lib.secrets, wanted or None)

    @property
    def available(self) -> bool:
        return self._secret is not None

    def encrypt(self, plaintext: bytes) -> bytes:
        return self._lib.encrypt(plaintext, secret=self._secret, vault_id=self.vault_id)

    def decrypt(self, path: str, vaulttext: bytes) -> bytes:
        if not self._lib.secrets:
            raise SecretFileError(
                f"{path} is encrypted with ansible-vault, but this run has no vault password: {PASS_THE_PASSWORD}. "
                "The file is left as it is."
            )
        try:
            return self._lib.decrypt(vaulttext)
        except AnsibleError:
            raise SecretFileError(
                f"{path} is encrypted with ansible-vault{envelope_id(vaulttext)}, and no vault password of this run "
                "opens it: pass the one it was encrypted with. The file is left as it is."
            ) from None


def envelope_id(vaulttext: bytes) -> str:
    """The vault id an encrypted file names in its header, as words for a message ('' when it names none)."""
    try:
        vault_id = parse_vaulttext_envelope(vaulttext)[3]
    except AnsibleError:
        return ""
    return f" (vault id {vault_id})" if vault_id and vault_id != "default" else ""


def read(path: str, vault: Vault) -> Found:
    """The file as it is, decrypted; Found(None) when there is none."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
    except FileNotFoundError:
        return Found(None)
    except IsADirectoryError:
        raise SecretFileError(f"{path} is a directory, not a secret file") from None
    except OSError as error:
        raise SecretFileError(f"cannot read {path}: {error.strerror}") from None
    if is_encrypted(data):
        return Found(vault.decrypt(path, data), encrypted=True, mode=mode)
    return Found(data, encrypted=False, mode=mode)


def make_directories(directory: str) -> None:
    """Make `directory` and each missing directory above it, 0700 whatever the umask."""
    missing = []
    while not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for path in reversed(missing):
        # Another fork may make the same directory at the same time.
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, DIRECTORY_MODE)
            os.chmod(path, DIRECTORY_MODE)


def _stored(content: bytes, vault: Vault) -> bytes:
    if is_encrypted(content):
        # Stored as it is, it would read back as an encrypted file; encrypted again, vault refuses it.
        raise SecretFileError("the content is vault-encrypted text already: give the plain secret")
    return vault.encrypt(content) if vault.available else content


def _temporary(path: str, data: bytes) -> str:
    """A temporary file (0600) beside `path` holding `data`, flushed to disk."""
    directory = os.path.dirname(path)
    make_directories(directory)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, FILE_MODE)
    except BaseException:
        os.unlink(temporary)
        raise
    return temporary


def _sync_directory(directory: str) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write(path: str, content: bytes, vault: Vault) -> None:
    """Replace the file with `content`, encrypted when the run has a vault password, atomically, mode 0600."""
    data = _stored(content, vault)
    try:
        temporary = _temporary(path, data)
        try:
            os.replace(temporary, path)
        except OSError:
            os.unlink(temporary)
            raise
        _sync_directory(os.path.dirname(path))
    except OSError as error:
        raise SecretFileError(f"cannot write {path}: {error.strerror}") from None


def create(path: str, content: bytes, vault: Vault) -> bool:
    """Create the file with `content` unless it exists; False when another writer made it first."""
    data = _stored(content, vault)
    try:
        temporary = _temporary(path, data)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(temporary)
        _sync_directory(os.path.dirname(path))
    except OSError as error:
        raise SecretFileError(f"cannot write {path}: {error.strerror}") from None
    return True


def set_mode(path: str) -> None:
    try:
        os.chmod(path, FILE_MODE)
    except OSError as error:
        raise SecretFileError(f"cannot set the mode of {path}: {error.strerror}") from None
