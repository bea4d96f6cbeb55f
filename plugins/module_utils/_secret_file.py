# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A secret file in an environment's directory: what to do with it, Ansible-free so tests import it alone.

The action dockyard.platform.secret_file and the lookup dockyard.platform.secret read the file (decrypting it)
and write it (encrypting it) through plugins/plugin_utils/_secret_store.py; what they write, and whether at all,
is decided here from the file as found and what the task asks for. Nothing here sees a vault or a disk.
"""

from __future__ import annotations

import os
import secrets
import string
from dataclasses import dataclass

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700

# The character classes a generated secret may draw from, named as ansible.builtin.password names them.
CHARACTER_CLASSES = {
    "ascii_letters": string.ascii_letters,
    "ascii_lowercase": string.ascii_lowercase,
    "ascii_uppercase": string.ascii_uppercase,
    "digits": string.digits,
    "hexdigits": string.hexdigits,
    "punctuation": string.punctuation,
}
MAX_SECRET_LENGTH = 1024


class SecretFileError(ValueError):
    """A secret file that cannot be read or written as asked, with a message naming the file (no secret in it)."""


@dataclass(frozen=True)
class Found:
    """A secret file as it is: its plain content (None: no file), whether it is stored encrypted, and its mode."""

    content: bytes | None
    encrypted: bool = False
    mode: int | None = None

    @property
    def exists(self) -> bool:
        return self.content is not None


@dataclass(frozen=True)
class Plan:
    """What to do: write `content` (None: no write), else set the file's mode; `actions` says it in words."""

    content: bytes | None
    chmod: bool
    actions: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return self.content is not None or self.chmod


def check_path(path: object) -> str:
    """The normalised absolute path of a secret file; refused when relative, a directory's name or not text."""
    if not isinstance(path, str) or not path or "\x00" in path:
        raise SecretFileError(f"path is {path!r}, not a file name")
    expanded = os.path.expanduser(path)
    if not os.path.isabs(expanded):
        raise SecretFileError(f"path is {path!r}, not an absolute path (or one starting with ~) on the controller")
    if os.path.basename(expanded) in ("", ".", ".."):
        raise SecretFileError(f"path is {path!r}, which names a directory, not a file")
    return os.path.normpath(expanded)


def plan(found: Found, desired: bytes | None, force: bool, encrypt: bool) -> Plan:
    """What makes the file hold its secret as asked.

    desired None keeps the content found; force False keeps an existing file's content whatever is desired. With
    encrypt, a plain file is rewritten encrypted (same content). A write always leaves the file 0600; without one,
    a file of another mode only gets its mode set."""
    if not found.exists:
        if desired is None:
            return Plan(None, False, ())
        return Plan(desired, False, ("create it encrypted" if encrypt else "create it",))
    actions = []
    content = None
    if desired is not None and force and desired != found.content:
        content = desired
        actions.append("replace its content")
    if encrypt and not found.encrypted:
        content = found.content if content is None else content
        actions.append("encrypt it in place")
    chmod = content is None and found.mode != FILE_MODE
    if chmod:
        actions.append(f"set its mode to 0600 (was {found.mode:04o})" if found.mode is not None else "set its mode")
    return Plan(content, chmod, tuple(actions))


def alphabet(chars: list[str]) -> str:
    """The characters a generated secret is drawn from, given as the names of character classes."""
    if not chars:
        raise SecretFileError(f"chars is empty: name at least one of {', '.join(CHARACTER_CLASSES)}")
    unknown = [entry for entry in chars if not isinstance(entry, str) or entry not in CHARACTER_CLASSES]
    if unknown:
        raise SecretFileError(f"chars has {unknown!r}: use the names {', '.join(CHARACTER_CLASSES)}")
    return "".join(sorted(set("".join(CHARACTER_CLASSES[entry] for entry in chars))))


def generate(length: int, chars: list[str]) -> str:
    """A new random secret of `length` characters from `chars` (the operating system's random source)."""
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= MAX_SECRET_LENGTH:
        raise SecretFileError(f"length is {length!r}, not a whole number from 1 to {MAX_SECRET_LENGTH}")
    pool = alphabet(chars)
    return "".join(secrets.choice(pool) for _position in range(length))
