"""A secret file's plan: what to write, and when nothing, decided from the file found and the task's wish."""

import os
import string

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils._secret_file import (
    CHARACTER_CLASSES,
    MAX_SECRET_LENGTH,
    Found,
    SecretFileError,
    alphabet,
    check_path,
    generate,
    plan,
)
from hypothesis import given
from hypothesis import strategies as st

contents = st.binary(max_size=64)
modes = st.sampled_from([0o600, 0o644, 0o640, 0o400])
found_files = st.one_of(
    st.just(Found(None)),
    st.builds(Found, contents, st.booleans(), modes),
)


def test_a_missing_file_is_created_with_the_content_and_encrypted_when_it_can_be():
    assert plan(Found(None), b"s3cret\n", force=True, encrypt=True).content == b"s3cret\n"
    assert plan(Found(None), b"s3cret\n", force=False, encrypt=False).actions == ("create it",)
    assert plan(Found(None), b"s3cret\n", force=False, encrypt=True).actions == ("create it encrypted",)


def test_without_content_a_missing_file_stays_missing():
    planned = plan(Found(None), None, force=True, encrypt=True)
    assert not planned.changed and planned.actions == ()


def test_a_plain_file_is_encrypted_in_place_with_its_own_content():
    planned = plan(Found(b"old\n", encrypted=False, mode=0o600), None, force=True, encrypt=True)
    assert planned.content == b"old\n" and planned.actions == ("encrypt it in place",)


def test_force_false_keeps_the_existing_secret_and_still_encrypts_it():
    planned = plan(Found(b"old\n", encrypted=False, mode=0o600), b"new\n", force=False, encrypt=True)
    assert planned.content == b"old\n" and planned.actions == ("encrypt it in place",)


def test_new_content_replaces_the_old_one_encrypted():
    planned = plan(Found(b"old\n", encrypted=True, mode=0o600), b"new\n", force=True, encrypt=True)
    assert planned.content == b"new\n" and planned.actions == ("replace its content",)


def test_a_file_of_another_mode_only_gets_its_mode_set():
    planned = plan(Found(b"same\n", encrypted=True, mode=0o644), b"same\n", force=True, encrypt=True)
    assert planned.content is None and planned.chmod
    assert planned.actions == ("set its mode to 0600 (was 0644)",)


@given(found_files, st.one_of(st.none(), contents), st.booleans(), st.booleans())
def test_the_plan_leaves_the_file_as_asked(found, desired, force, encrypt):
    planned = plan(found, desired, force=force, encrypt=encrypt)
    kept = found.content if found.exists and (desired is None or not force) else desired
    if planned.content is not None:
        # Whatever is written is what the file should hold.
        assert planned.content == kept
    elif kept is not None:
        # No write: the file holds it already, stored as asked (or encrypted, which only a vault could read).
        assert found.content == kept and (found.encrypted or not encrypt)
    assert planned.changed == bool(planned.actions)


@given(st.builds(Found, contents, st.just(True), st.just(0o600)), st.booleans())
def test_an_encrypted_file_with_its_own_content_is_never_rewritten(found, force):
    # A rewrite would change the ciphertext (a new salt) and report a change on every run.
    assert not plan(found, found.content, force=force, encrypt=True).changed


@given(st.builds(Found, contents, st.booleans(), modes), contents, st.booleans())
def test_force_false_never_writes_other_content_over_an_existing_secret(found, desired, encrypt):
    planned = plan(found, desired, force=False, encrypt=encrypt)
    assert planned.content in (None, found.content)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("relative/ca.key", "not an absolute path"),
        ("", "not a file name"),
        (None, "not a file name"),
        ("/srv/env/pki/", "names a directory"),
        ("/srv/env/..", "names a directory"),
        ("/srv/env\x00/ca.key", "not a file name"),
    ],
)
def test_a_path_that_is_not_an_absolute_file_name_is_refused(path, message):
    with pytest.raises(SecretFileError, match=message):
        check_path(path)


def test_a_path_is_normalised_and_its_home_expanded():
    assert check_path("~/env//pki/./ca.key") == os.path.join(os.path.expanduser("~"), "env", "pki", "ca.key")


@given(st.integers(1, MAX_SECRET_LENGTH), st.lists(st.sampled_from(sorted(CHARACTER_CLASSES)), min_size=1))
def test_a_generated_secret_has_the_length_and_the_characters_asked(length, chars):
    secret = generate(length, chars)
    allowed = set("".join(CHARACTER_CLASSES[name] for name in chars))
    assert len(secret) == length and set(secret) <= allowed


def test_the_alphabet_counts_each_character_once():
    # A character in two classes must not be drawn twice as often.
    assert alphabet(["hexdigits", "digits"]) == "".join(sorted(set(string.hexdigits)))


@pytest.mark.parametrize(
    ("length", "chars", "message"),
    [
        (0, ["digits"], "length is 0"),
        (MAX_SECRET_LENGTH + 1, ["digits"], "length is 1025"),
        (True, ["digits"], "length is True"),
        (32, [], "chars is empty"),
        (32, ["ascii_letter"], "chars has ['ascii_letter']"),
        (32, [["digits"]], "chars has [['digits']]"),
    ],
)
def test_a_generation_request_outside_the_limits_is_refused(length, chars, message):
    with pytest.raises(SecretFileError) as caught:
        generate(length, chars)
    assert message in str(caught.value)
