# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The plain logic of dockyard.platform.consul_keys, free of Ansible imports.

desired state (build_desired) → plan against what Consul holds (make_plan) →
transactions (batch_operations) → a seeder that runs read → plan → write with
check-and-set and bounded retries (KeySeeder). The module only wires options,
check mode and diff around KeySeeder.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os

# Consul's defaults: kv_max_value_size and txn_max_req_len are 512 KiB, and a
# transaction holds at most 64 operations.
KV_MAX_VALUE_SIZE = 512 * 1024
TXN_MAX_REQ_LEN = 512 * 1024
TXN_MAX_OPERATIONS = 64
SECRET_MASK = "********"


class ConsulKeysError(Exception):
    """Bad input or a write that could not be made; the message names the keys."""

    def __init__(self, message, keys=()):
        super().__init__(message)
        self.keys = list(keys)


class ConflictError(ConsulKeysError):
    """Another writer kept changing keys between our read and our write."""


# --- keys and values -------------------------------------------------------


def check_key(key, what="key"):
    """Raises ConsulKeysError unless key is a clean relative KV path."""
    if not isinstance(key, str):
        raise ConsulKeysError(f"{what} {key!r}: a key must be a string, not {type(key).__name__}", [str(key)])
    if key == "":
        raise ConsulKeysError(f"{what} '': a key must not be empty", [key])
    if key.startswith("/"):
        raise ConsulKeysError(f"{what} {key!r}: a key must not start with '/'", [key])
    if key.endswith("/"):
        raise ConsulKeysError(f"{what} {key!r}: a key must not end with '/'", [key])
    for segment in key.split("/"):
        if segment in ("..", "."):
            raise ConsulKeysError(f"{what} {key!r}: a key must not contain a '{segment}' segment", [key])
        if segment == "":
            raise ConsulKeysError(f"{what} {key!r}: a key must not contain an empty segment ('//')", [key])
    if any(ord(char) < 32 or ord(char) == 127 for char in key):
        raise ConsulKeysError(f"{what} {key!r}: a key must not contain control characters", [key])


def normalize_prefix(prefix):
    """'config/app' or 'config/app/' → 'config/app/'; refuses '', '/x', '..' and friends."""
    if not isinstance(prefix, str) or not prefix.strip("/"):
        raise ConsulKeysError(f"prefix {prefix!r}: the prefix must name a folder, such as config/myapp")
    check_key(prefix.rstrip("/"), what="prefix")
    return prefix.rstrip("/") + "/"


def encode_value(key, value, value_format="auto"):
    """The text a desired value is stored as, and the structure it came from (or None).

    Strings are stored as they are; numbers and booleans as their JSON text;
    mappings and lists as JSON (only with value_format auto); None is refused.
    """
    if isinstance(value, str):
        return value, None
    if isinstance(value, bool) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return json.dumps(value), None
    if value is None:
        raise ConsulKeysError(
            f"key {key!r}: the value is null; a string is required (use '' for an empty value)", [key]
        )
    if isinstance(value, (dict, list, tuple)):
        if value_format == "string":
            raise ConsulKeysError(
                f"key {key!r}: the value is a {'mapping' if isinstance(value, dict) else 'list'}, "
                "a string is required with value_format=string",
                [key],
            )
        try:
            return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False), value
        except (TypeError, ValueError) as error:
            raise ConsulKeysError(f"key {key!r}: the value cannot be stored as JSON: {error}", [key]) from error
    raise ConsulKeysError(f"key {key!r}: a {type(value).__name__} value cannot be stored; a string is required", [key])


def transaction_size(key, raw):
    """Bytes one set operation for key with value raw adds to a transaction body."""
    operation = {"KV": {"Verb": "cas", "Key": key, "Value": base64.b64encode(raw).decode("ascii"), "Index": 0}}
    return len(json.dumps(operation, separators=(",", ":")).encode("utf-8")) + 1


def check_value_size(key, raw, kv_max_value_size=KV_MAX_VALUE_SIZE, txn_max_req_len=TXN_MAX_REQ_LEN):
    if len(raw) > kv_max_value_size:
        raise ConsulKeysError(
            f"key {key!r}: the value is {len(raw)} bytes, over Consul's kv_max_value_size of {kv_max_value_size}",
            [key],
        )
    needed = transaction_size(key, raw) + 2
    if needed > txn_max_req_len:
        raise ConsulKeysError(
            f"key {key!r}: the value is {len(raw)} bytes; base64-encoded in a transaction it needs {needed} bytes, "
            f"over Consul's txn_max_req_len of {txn_max_req_len}",
            [key],
        )


def read_directory(src):
    """{relative key: text} for every file below src; names starting with '.' are skipped.

    A symbolic link is followed only when it resolves inside src: one that leads out of it (to /etc/shadow, a
    key file, another checkout) is refused, naming it, before anything is sent.
    """
    if not os.path.isdir(src):
        raise ConsulKeysError(f"src {src}: not a directory")
    top = os.path.realpath(src)
    found = {}
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        for name in dirs:
            _inside(src, top, os.path.join(root, name))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(root, name)
            key = os.path.relpath(path, src).replace(os.sep, "/")
            real = _inside(src, top, path, key)
            try:
                descriptor = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                with os.fdopen(descriptor, "rb") as handle:
                    raw = handle.read()
            except OSError as error:
                raise ConsulKeysError(f"key {key!r}: cannot read {path}: {error}", [key]) from error
            try:
                found[key] = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ConsulKeysError(f"key {key!r}: {path} is not UTF-8 text", [key]) from error
    return found


def _inside(src, top, path, key=None):
    """The real path of path below src; ConsulKeysError naming path when a symbolic link leads out of src."""
    real = os.path.realpath(path)
    if os.path.commonpath([top, real]) != top:
        raise ConsulKeysError(
            f"src {src}: {path} is a symbolic link to {real}, outside src; refusing to upload it"
            " (copy the file into src, or link only within it)",
            [key] if key else [],
        )
    return real


class Desired:
    """One key's desired value: full key, stored text, and the structure it came from."""

    __slots__ = ("key", "structure", "text")

    def __init__(self, key, text, structure=None):
        self.key = key
        self.text = text
        self.structure = structure

    @property
    def raw(self):
        return self.text.encode("utf-8")

    def matches(self, current_raw):
        if current_raw == self.raw:
            return True
        if self.structure is None or current_raw is None:
            return False
        try:
            return json.loads(current_raw.decode("utf-8")) == self.structure
        except ValueError:
            return False


def build_desired(
    prefix,
    data=None,
    files=None,
    value_format="auto",
    kv_max_value_size=KV_MAX_VALUE_SIZE,
    txn_max_req_len=TXN_MAX_REQ_LEN,
):
    """{full key: Desired} from a data mapping and a {relative key: text} mapping of files.

    Every key and value is checked before anything is sent to Consul.
    """
    desired = {}
    for key, value in (data or {}).items():
        check_key(key)
        text, structure = encode_value(key, value, value_format)
        desired[prefix + key] = Desired(prefix + key, text, structure)
    for key, text in (files or {}).items():
        check_key(key)
        if prefix + key in desired:
            raise ConsulKeysError(f"key {key!r}: given both in data and as a file under src", [key])
        desired[prefix + key] = Desired(prefix + key, text)
    for item in desired.values():
        check_value_size(item.key[len(prefix) :], item.raw, kv_max_value_size, txn_max_req_len)
    return desired


class SecretMatcher:
    """Tells which keys (relative to the prefix) are secret, by fnmatch patterns."""

    def __init__(self, prefix, patterns=()):
        self.prefix = prefix
        self.patterns = list(patterns or ())

    def __call__(self, full_key):
        relative = full_key[len(self.prefix) :] if full_key.startswith(self.prefix) else full_key
        return any(fnmatch.fnmatchcase(relative, pattern) for pattern in self.patterns)


def secret_strings(value):
    """Every string a secret value shows as: itself and, for structures, its leaves."""
    found = set()
    if isinstance(value, dict):
        for item in value.values():
            found |= secret_strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            found |= secret_strings(item)
    elif value is not None and not isinstance(value, bool):
        text = value if isinstance(value, str) else str(value)
        if text:
            found.add(text)
    return found


# --- what Consul holds, and the plan ---------------------------------------


class Current:
    """One key as read from Consul: its raw value and ModifyIndex."""

    __slots__ = ("index", "key", "raw")

    def __init__(self, key, raw, index):
        self.key = key
        self.raw = raw
        self.index = index


def parse_entries(entries):
    """{key: Current} from the entries of GET /v1/kv/<prefix>?recurse."""
    current = {}
    for entry in entries or []:
        value = entry.get("Value")
        raw = base64.b64decode(value) if value else b""
        current[entry["Key"]] = Current(entry["Key"], raw, entry["ModifyIndex"])
    return current


def display(raw):
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"<binary value, {len(raw)} bytes>"


class Change:
    """One planned change: kind is added, updated or removed."""

    __slots__ = ("after", "before", "index", "key", "kind")

    def __init__(self, kind, key, before=None, after=None, index=0):
        self.kind = kind
        self.key = key
        self.before = before
        self.after = after
        self.index = index

    def operation(self):
        if self.kind == "removed":
            return {"KV": {"Verb": "delete-cas", "Key": self.key, "Index": self.index}}
        value = base64.b64encode(self.after).decode("ascii")
        return {"KV": {"Verb": "cas", "Key": self.key, "Value": value, "Index": self.index}}


def make_plan(prefix, current, desired=None, state="present", exclusive=False, remove=()):
    """The changes that bring current to the desired state, sorted by key.

    state present: write what differs; with exclusive, also remove every key
    under prefix that is not desired. state absent: remove the keys in remove
    (full keys) that exist. Each change carries the index it was read at, so
    its operation is a check-and-set.
    """
    desired = desired or {}
    changes = []
    if state == "present":
        for key, item in desired.items():
            found = current.get(key)
            if found is None:
                changes.append(Change("added", key, None, item.raw, 0))
            elif not item.matches(found.raw):
                changes.append(Change("updated", key, found.raw, item.raw, found.index))
        if exclusive:
            for key, found in current.items():
                if key.startswith(prefix) and key not in desired:
                    changes.append(Change("removed", key, found.raw, None, found.index))
    else:
        for key in remove:
            found = current.get(key)
            if found is not None:
                changes.append(Change("removed", key, found.raw, None, found.index))
    changes.sort(key=lambda change: change.key)
    return changes


def batch_changes(changes, max_operations=TXN_MAX_OPERATIONS, max_bytes=TXN_MAX_REQ_LEN):
    """Splits changes into as few transactions as the limits allow, in order."""
    batches, batch, size = [], [], 2
    for change in changes:
        cost = len(json.dumps(change.operation(), separators=(",", ":")).encode("utf-8")) + 1
        if batch and (len(batch) >= max_operations or size + cost > max_bytes):
            batches.append(batch)
            batch, size = [], 2
        batch.append(change)
        size += cost
    if batch:
        batches.append(batch)
    return batches


# --- the seeder ------------------------------------------------------------


class Outcome:
    """What a run did (or would do in check mode)."""

    def __init__(self):
        self.changes = {}
        self.conflicts = []
        self.attempts = 0
        self.transactions = 0

    def record(self, changes):
        for change in changes:
            earlier = self.changes.get(change.key)
            if earlier is None:
                self.changes[change.key] = change
                continue
            # Written again after a conflict: the run's change goes from the first before to the last after.
            before, after = earlier.before, change.after
            if before is None and after is None:
                del self.changes[change.key]
                continue
            kind = "added" if before is None else "removed" if after is None else "updated"
            self.changes[change.key] = Change(kind, change.key, before, after, change.index)

    def keys(self, kind):
        return sorted(key for key, change in self.changes.items() if change.kind == kind)

    @property
    def changed(self):
        return bool(self.changes)

    def diff(self, is_secret):
        """Ansible's before/after record, one entry per changed key, secrets masked."""
        before, after = {}, {}
        for key in sorted(self.changes):
            change = self.changes[key]
            if change.before is not None:
                before[key] = SECRET_MASK if is_secret(key) else display(change.before)
            if change.after is not None:
                after[key] = SECRET_MASK + " (changed)" if is_secret(key) else display(change.after)
        return {"before": before, "after": after}


class KeySeeder:
    """read → plan → write in check-and-set transactions, re-reading on conflicts.

    client needs kv_read_tree(prefix) → entries and txn(operations) → (ok, results, errors).
    """

    def __init__(
        self,
        client,
        prefix,
        desired=None,
        state="present",
        exclusive=False,
        remove=(),
        retries=3,
        check_mode=False,
        max_operations=TXN_MAX_OPERATIONS,
        max_bytes=TXN_MAX_REQ_LEN,
    ):
        self.client = client
        self.prefix = prefix
        self.desired = desired or {}
        self.state = state
        self.exclusive = exclusive
        self.remove = list(remove)
        self.retries = retries
        self.check_mode = check_mode
        self.max_operations = max_operations
        self.max_bytes = max_bytes

    def between_read_and_write(self, attempt, changes):
        """Test hook: called after each read and plan, before the plan's first transaction."""

    def read(self):
        return parse_entries(self.client.kv_read_tree(self.prefix))

    def run(self):
        outcome = Outcome()
        failed_keys = []
        for attempt in range(self.retries + 1):
            outcome.attempts = attempt + 1
            changes = make_plan(self.prefix, self.read(), self.desired, self.state, self.exclusive, self.remove)
            if self.check_mode:
                outcome.record(changes)
                return outcome
            if not changes:
                return outcome
            self.between_read_and_write(attempt, changes)
            failed_keys = self._write(changes, outcome)
            if not failed_keys:
                return outcome
            outcome.conflicts.extend(key for key in failed_keys if key not in outcome.conflicts)
        raise ConflictError(
            f"keys changed by another writer between read and write, {self.retries + 1} times in a row: "
            f"{', '.join(sorted(failed_keys))}; the transaction holding them was not applied"
            + (
                f" (earlier transactions of this run were applied: {len(outcome.changes)} keys)"
                if outcome.changes
                else ""
            ),
            sorted(failed_keys),
        )

    def _write(self, changes, outcome):
        """Writes the batches in order; returns the keys of a batch that met a stale index (else [])."""
        for batch in batch_changes(changes, self.max_operations, self.max_bytes):
            ok, _results, errors = self.client.txn([change.operation() for change in batch])
            outcome.transactions += 1
            if ok:
                outcome.record(batch)
                continue
            denied, stale = [], []
            for error in errors:
                position = error.get("OpIndex", 0)
                key = batch[position].key if 0 <= position < len(batch) else "?"
                what = error.get("What", "")
                (denied if "permission denied" in what.lower() else stale).append((key, what))
            if denied:
                keys = sorted({key for key, _what in denied})
                raise ConsulKeysError(
                    f"Consul's ACLs deny writing {', '.join(keys)}: give a token with key write permission "
                    "(the token option or CONSUL_HTTP_TOKEN); nothing in that transaction was written",
                    keys,
                )
            if not stale:
                raise ConsulKeysError(f"Consul refused a transaction: {errors!r}")
            if any("index is stale" not in what and "cas" not in what.lower() for _key, what in stale):
                messages = "; ".join(f"{key}: {what}" for key, what in stale)
                raise ConsulKeysError(f"Consul refused a transaction: {messages}", [key for key, _what in stale])
            return [key for key, _what in stale]
        return []
