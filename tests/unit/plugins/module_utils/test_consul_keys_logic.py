"""The plain logic of consul_keys: keys, values, plans, batches and the seeder's retry loop."""

import importlib
import json

import pytest
from support.fake_consul import FakeConsul as _Fake

ck = importlib.import_module("ansible_collections.dockyard.platform.plugins.module_utils._consul_keys")

PREFIX = "config/app/"


@pytest.fixture(autouse=True)
def _close_fakes():
    """Every fake Consul a test started (FakeConsul below) is closed after it."""
    yield
    while _STARTED:
        _STARTED.pop().close()


_STARTED = []


def FakeConsul(data=None):
    """The one fake Consul (tests/support/fake_consul.py), seeded with data, closed after the test."""
    consul = _Fake(data)
    _STARTED.append(consul)
    return consul


# --- keys and values -------------------------------------------------------


@pytest.mark.parametrize("key", ["../etc", "a/../b", "/abs", "a//b", "a/", "", "a/./b", "tab\there"])
def test_bad_keys_are_refused_naming_the_key(key):
    with pytest.raises(ck.ConsulKeysError) as refused:
        ck.check_key(key)
    assert repr(key) in str(refused.value)
    assert refused.value.keys == [key]


@pytest.mark.parametrize("key", ["a", "a/b/c", "db.host", "with space", "x-y_z"])
def test_clean_keys_pass(key):
    ck.check_key(key)


@pytest.mark.parametrize(("given", "expected"), [("config/app", "config/app/"), ("config/app/", "config/app/")])
def test_prefix_is_normalized(given, expected):
    assert ck.normalize_prefix(given) == expected


@pytest.mark.parametrize("prefix", ["", "/", "/config", "config/../x"])
def test_bad_prefixes_are_refused(prefix):
    with pytest.raises(ck.ConsulKeysError, match="prefix"):
        ck.normalize_prefix(prefix)


def test_values_are_encoded_by_type():
    assert ck.encode_value("k", "text") == ("text", None)
    assert ck.encode_value("k", 8080) == ("8080", None)
    assert ck.encode_value("k", True) == ("true", None)
    assert ck.encode_value("k", {"b": 1, "a": [1, 2]}) == ('{"a":[1,2],"b":1}', {"b": 1, "a": [1, 2]})


def test_null_and_structures_in_string_mode_are_refused_naming_the_key():
    with pytest.raises(ck.ConsulKeysError, match=r"'db/host'.*null"):
        ck.encode_value("db/host", None)
    with pytest.raises(ck.ConsulKeysError, match=r"'features'.*mapping.*string is required"):
        ck.encode_value("features", {"a": 1}, "string")
    with pytest.raises(ck.ConsulKeysError, match=r"'hosts'.*list"):
        ck.encode_value("hosts", ["a"], "string")
    with pytest.raises(ck.ConsulKeysError, match=r"'blob'.*bytes value"):
        ck.encode_value("blob", b"raw")


def test_oversized_values_are_refused_naming_the_key():
    with pytest.raises(ck.ConsulKeysError, match=r"'big'.*kv_max_value_size"):
        ck.build_desired(PREFIX, {"big": "x" * (ck.KV_MAX_VALUE_SIZE + 1)})
    # Under kv_max_value_size but too big once base64-encoded in a transaction.
    with pytest.raises(ck.ConsulKeysError, match=r"'big'.*txn_max_req_len"):
        ck.build_desired(PREFIX, {"big": "x" * 400_000})
    assert ck.build_desired(PREFIX, {"ok": "x" * 380_000})


def test_a_key_in_both_data_and_files_is_refused():
    with pytest.raises(ck.ConsulKeysError, match=r"'a'.*both"):
        ck.build_desired(PREFIX, {"a": "1"}, {"a": "2"})


def test_directory_becomes_keys(tmp_path):
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "host").write_text("db1")
    (tmp_path / "replicas").write_text("3")
    (tmp_path / ".gitkeep").write_text("")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    assert ck.read_directory(str(tmp_path)) == {"db/host": "db1", "replicas": "3"}


def test_a_binary_file_is_refused_naming_the_key(tmp_path):
    (tmp_path / "blob").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ck.ConsulKeysError, match=r"'blob'.*UTF-8"):
        ck.read_directory(str(tmp_path))


@pytest.mark.parametrize("kind", ["file", "directory", "dangling", "chain"])
def test_a_symlink_leading_out_of_src_is_refused_naming_it(tmp_path, kind):
    src, outside = tmp_path / "src", tmp_path / "outside"
    src.mkdir()
    outside.mkdir()
    (outside / "id_rsa").write_text("PRIVATE KEY")
    (src / "ok").write_text("1")
    link = src / "leak"
    if kind == "file":
        link.symlink_to(outside / "id_rsa")
    elif kind == "directory":
        link.symlink_to(outside)
    elif kind == "dangling":
        link.symlink_to(outside / "not-yet")
    else:  # a link inside src that points at a link out of it
        (src / "hop").symlink_to(outside / "id_rsa")
        link.symlink_to(src / "hop")
    with pytest.raises(ck.ConsulKeysError) as raised:
        ck.read_directory(str(src))
    assert f"{src}/" in str(raised.value)
    assert "is a symbolic link to" in str(raised.value)
    assert "outside src" in str(raised.value)
    assert "PRIVATE KEY" not in str(raised.value)


def test_a_symlink_within_src_is_read(tmp_path):
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "host").write_text("db1")
    (tmp_path / "host").symlink_to(tmp_path / "db" / "host")
    (tmp_path / "relative").symlink_to("db/host")
    assert ck.read_directory(str(tmp_path)) == {"db/host": "db1", "host": "db1", "relative": "db1"}


# --- plans and batches -----------------------------------------------------


def current_of(data):
    return ck.parse_entries(FakeConsul(data).client().kv_read_tree(""))


def test_plan_writes_only_what_differs():
    current = current_of({PREFIX + "same": "1", PREFIX + "old": "1", PREFIX + "json": '{"b": 2, "a": 1}'})
    desired = ck.build_desired(PREFIX, {"same": "1", "old": "2", "new": "3", "json": {"a": 1, "b": 2}})
    plan = ck.make_plan(PREFIX, current, desired)
    assert [(change.kind, change.key) for change in plan] == [("added", PREFIX + "new"), ("updated", PREFIX + "old")]
    updated = plan[1]
    assert updated.index == current[PREFIX + "old"].index
    assert updated.operation()["KV"]["Verb"] == "cas"
    assert plan[0].operation()["KV"]["Index"] == 0


def test_exclusive_removes_only_undesired_keys_under_the_prefix():
    current = current_of({PREFIX + "keep": "1", PREFIX + "drop/deep": "1", "config/application": "x", "other/k": "y"})
    plan = ck.make_plan(PREFIX, current, ck.build_desired(PREFIX, {"keep": "1"}), exclusive=True)
    assert [(change.kind, change.key) for change in plan] == [("removed", PREFIX + "drop/deep")]
    assert plan[0].operation() == {"KV": {"Verb": "delete-cas", "Key": PREFIX + "drop/deep", "Index": plan[0].index}}


def test_absent_removes_existing_given_keys():
    current = current_of({PREFIX + "a": "1", PREFIX + "b": "1"})
    plan = ck.make_plan(PREFIX, current, state="absent", remove=[PREFIX + "a", PREFIX + "missing"])
    assert [(change.kind, change.key) for change in plan] == [("removed", PREFIX + "a")]


def test_batches_respect_operation_and_byte_limits():
    changes = [ck.Change("added", f"k{i}", None, b"v", 0) for i in range(130)]
    assert [len(batch) for batch in ck.batch_changes(changes)] == [64, 64, 2]
    big = [ck.Change("added", f"k{i}", None, b"x" * 100_000, 0) for i in range(5)]
    batches = ck.batch_changes(big, max_bytes=ck.TXN_MAX_REQ_LEN)
    assert [len(batch) for batch in batches] == [3, 2]
    for batch in batches:
        body = json.dumps([change.operation() for change in batch], separators=(",", ":"))
        assert len(body) <= ck.TXN_MAX_REQ_LEN


# --- the seeder ------------------------------------------------------------


def seeder(consul, data, **kwargs):
    return ck.KeySeeder(consul.client(), PREFIX, desired=ck.build_desired(PREFIX, data), **kwargs)


def test_seeding_then_reseeding_writes_nothing_the_second_time():
    consul = FakeConsul({"other/k": "untouched"})
    data = {f"k{i:04d}": str(i) for i in range(200)}
    first = seeder(consul, data).run()
    assert len(first.keys("added")) == 200
    assert first.transactions == 4
    assert max(len(operations) for operations in consul.transactions) <= ck.TXN_MAX_OPERATIONS
    writes = len(consul.transactions)
    second = seeder(consul, data).run()
    assert not second.changed
    assert len(consul.transactions) == writes
    assert consul.values()["other/k"] == "untouched"


def test_check_mode_plans_without_writing():
    consul = FakeConsul({PREFIX + "a": "old"})
    outcome = seeder(consul, {"a": "new", "b": "x"}, check_mode=True).run()
    assert outcome.keys("updated") == [PREFIX + "a"]
    assert outcome.keys("added") == [PREFIX + "b"]
    assert consul.transactions == []


class ChangeBetweenReadAndWrite(ck.KeySeeder):
    """Another writer changes a key after each read (for the first `times` reads)."""

    times = 1
    fake = None

    def between_read_and_write(self, attempt, changes):
        if attempt < self.times:
            self.fake.set(PREFIX + "a", f"theirs-{attempt}")


def test_a_conflict_is_retried_and_the_desired_state_wins():
    consul = FakeConsul({PREFIX + "a": "old"})
    run = ChangeBetweenReadAndWrite(
        consul.client(), PREFIX, desired=ck.build_desired(PREFIX, {"a": "ours", "b": "new"})
    )
    run.fake = consul
    outcome = run.run()
    assert outcome.conflicts == [PREFIX + "a"]
    assert outcome.attempts == 2
    assert consul.values() == {PREFIX + "a": "ours", PREFIX + "b": "new"}
    assert outcome.diff(lambda key: False)["before"] == {PREFIX + "a": "theirs-0"}


def test_a_persisting_conflict_fails_naming_the_key_with_nothing_written():
    consul = FakeConsul({PREFIX + "a": "old"})
    run = ChangeBetweenReadAndWrite(
        consul.client(), PREFIX, desired=ck.build_desired(PREFIX, {"a": "ours", "b": "new"}), retries=2
    )
    run.fake, run.times = consul, 99
    with pytest.raises(ck.ConflictError) as failed:
        run.run()
    assert failed.value.keys == [PREFIX + "a"]
    assert PREFIX + "a" in str(failed.value)
    assert len(consul.transactions) == 3
    assert consul.values() == {PREFIX + "a": "theirs-2"}


def test_permission_denied_names_the_keys():
    consul = FakeConsul()
    consul.denied = ["*"]
    with pytest.raises(ck.ConsulKeysError, match="ACLs deny writing config/app/a, config/app/b"):
        seeder(consul, {"a": "1", "b": "2"}).run()
    assert consul.values() == {}


def test_diff_masks_secret_values():
    consul = FakeConsul({PREFIX + "db/password": "old-secret", PREFIX + "db/host": "db1"})
    outcome = seeder(consul, {"db/password": "new-secret", "db/host": "db2"}).run()
    is_secret = ck.SecretMatcher(PREFIX, ["*/password"])
    diff = outcome.diff(is_secret)
    assert diff["before"] == {PREFIX + "db/host": "db1", PREFIX + "db/password": ck.SECRET_MASK}
    assert "new-secret" not in json.dumps(diff)
    assert "old-secret" not in json.dumps(diff)


def test_secret_strings_collects_leaves():
    assert ck.secret_strings({"user": "u", "pass": "p", "n": [1, "x"], "flag": True}) == {"u", "p", "1", "x"}
