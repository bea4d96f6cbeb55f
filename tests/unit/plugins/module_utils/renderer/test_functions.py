"""consul-template's helpers with Go's semantics: JSON, YAML, base64, sha256, regular expressions, timestamps."""

import base64
import datetime
import hashlib
import json
import math

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.renderer import functions
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.dependencies import decode_value, encode_text
from ansible_collections.dockyard.platform.plugins.module_utils.renderer.template import KVPair
from hypothesis import given
from hypothesis import strategies as st


# -- JSON -----------------------------------------------------------------------------
def go_quote(text: str) -> str:
    """A reference, written from encoding/json's encodeState.string (Go 1.22+, escapeHTML on), char by char."""
    out = '"'
    for char in text:
        code = ord(char)
        if char in '"\\':
            out += "\\" + char
        elif char == "\n":
            out += "\\n"
        elif char == "\r":
            out += "\\r"
        elif char == "\t":
            out += "\\t"
        elif char == "\b":
            out += "\\b"
        elif char == "\f":
            out += "\\f"
        elif code < 0x20 or char in "<>&" or code in (0x2028, 0x2029):
            out += "\\u00" + format(code, "02x") if code < 0x100 else "\\u" + format(code, "04x")
        elif 0xD800 <= code <= 0xDFFF:
            out += "\\ufffd"
        else:
            out += char
    return out + '"'


@given(st.text())
def test_strings_are_escaped_as_go_escapes_them(text):
    assert functions.to_json(text) == go_quote(text)


@given(st.binary())
def test_bytes_that_are_not_utf8_become_the_replacement_character_as_in_go(raw):
    # Go's decoder gives one U+FFFD per byte it cannot decode (utf8.RuneError with size 1).
    text = decode_value(raw)
    per_byte = "".join("\ufffd" if "\udc80" <= char <= "\udcff" else char for char in text)
    assert json.loads(functions.to_json(text)) == per_byte


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_json_is_compact_sorted_and_decodes_to_the_same_value(value):
    text = functions.to_json(value)
    assert equivalent(json.loads(text), value)
    assert text == go_compact(value)
    assert equivalent(json.loads(functions.to_json_pretty(value)), value)


def equivalent(decoded, value) -> bool:
    """Equal, a float written without a fraction (Go's 1e+20 is 100000000000000000000) decoding to an int."""
    if isinstance(value, float):
        return float(decoded) == value
    if isinstance(value, dict):
        return decoded.keys() == value.keys() and all(equivalent(decoded[key], value[key]) for key in value)
    if isinstance(value, list):
        return len(decoded) == len(value) and all(map(equivalent, decoded, value))
    return decoded == value


def go_compact(value) -> str:
    """What the compact form must look like: Python's own compact, sorted JSON, with Go's strings and floats."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{go_quote(k)}:{go_compact(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ",".join(go_compact(v) for v in value) + "]"
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, float):
        return functions.to_json(value)
    return json.dumps(value)


@pytest.mark.parametrize(
    ("number", "go"),
    [
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1.5e-10, "1.5e-10"),
        (0.000001, "0.000001"),
        (123456789.0, "123456789"),
        (2.5, "2.5"),
        (-0.0, "-0"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)
def test_floats_are_written_in_gos_shortest_form(number, go):
    assert functions.to_json(number) == go


def test_nan_is_refused_as_go_refuses_it():
    with pytest.raises(functions.FunctionError, match="toJSON: unsupported value"):
        functions.to_json(math.nan)


def test_pretty_json_is_gos_marshal_indent_with_two_spaces():
    value = {"maxconns": "5", "admin": {"port": "1234"}, "empty": {}, "list": [1, "<a>"], "none": []}
    assert functions.to_json_pretty(value) == (
        '{\n  "admin": {\n    "port": "1234"\n  },\n  "empty": {},\n  "list": [\n    1,\n'
        '    "\\u003ca\\u003e"\n  ],\n  "maxconns": "5",\n  "none": []\n}'
    )


def test_entries_encode_with_consul_templates_field_names():
    pair = KVPair("a", "p/a", "1", 7)
    assert functions.to_json([pair]) == '[{"CreateIndex":7,"Key":"a","Path":"p/a","Value":"1"}]'


def test_empty_values_parse_to_an_empty_map_and_bad_json_names_the_function():
    assert functions.parse_json("") == {}
    assert functions.parse_json(KVPair("a", "p/a", '{"x": [1]}')) == {"x": [1]}
    with pytest.raises(functions.FunctionError, match="parseJSON: "):
        functions.parse_json("{nope")


# -- YAML -----------------------------------------------------------------------------
def test_yaml_is_written_as_go_yaml_writes_it():
    value = {"maxconns": "5", "admin": {"port": "1234"}, "hosts": ["a", "b"], "text": "one\ntwo"}
    assert functions.to_yaml(value) == (
        'admin:\n  port: "1234"\nhosts:\n- a\n- b\nmaxconns: "5"\ntext: |-\n  one\n  two'
    )


def test_yaml_parses_and_an_empty_value_is_an_empty_map():
    assert functions.parse_yaml("") == {}
    assert functions.parse_yaml("a:\n  b: [1, 2]\n") == {"a": {"b": [1, 2]}}
    with pytest.raises(functions.FunctionError, match="parseYAML: "):
        functions.parse_yaml("a: [")


# -- base64, sha256 -------------------------------------------------------------------
@given(st.binary())
def test_base64_round_trips_any_value_and_matches_the_standard_encodings(raw):
    text = decode_value(raw)
    assert functions.base64_encode(text) == base64.b64encode(raw).decode()
    assert functions.base64_url_encode(text) == base64.urlsafe_b64encode(raw).decode()
    assert encode_text(functions.base64_decode(functions.base64_encode(text))) == raw
    assert encode_text(functions.base64_url_decode(functions.base64_url_encode(text))) == raw
    assert functions.sha256_hex(text) == hashlib.sha256(raw).hexdigest()


@given(st.text())
def test_base64_decoding_refuses_what_is_not_base64(text):
    try:
        decoded = functions.base64_decode(text)
    except functions.FunctionError as error:
        assert str(error).startswith("base64Decode: ")
    else:
        assert base64.b64encode(encode_text(decoded)).decode() == text.replace("\r", "").replace("\n", "")


@pytest.mark.parametrize(
    ("function", "value"),
    [
        (functions.base64_decode, "aGVsbG8"),
        (functions.base64_decode, "aGV-bG8="),
        (functions.base64_url_decode, "a+b/"),
    ],
)
def test_base64_decoding_names_the_function_in_its_error(function, value):
    with pytest.raises(functions.FunctionError, match="base64"):
        function(value)


def test_base64_examples_from_consul_templates_documentation():
    assert functions.base64_encode("hello") == "aGVsbG8="
    assert functions.base64_decode("aGVs\nbG8=") == "hello"  # Go skips newlines
    assert functions.base64_url_encode("??>") == "Pz8-"


# -- regular expressions --------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "replacement", "text", "go"),
    [
        ("foo([.a-z]+)", "$1", "foo.bar", ".bar"),
        ("(a)(b)", "${2}x$1", "ab", "bxa"),
        ("(a)", "$1x", "a", ""),  # $1x is ${1x}, a group that does not exist
        ("(?P<word>a)", "<$word>", "a", "<a>"),
        ("a", "$$1", "a", "$1"),
        ("a", "$", "a", "$"),
        ("x*", "-", "abxd", "-a-b-d-"),  # no empty match right after a match, as in Go
    ],
)
def test_regex_replace_all_expands_as_go_does(pattern, replacement, text, go):
    assert functions.regex_replace_all(pattern, replacement, text) == go


def test_regex_match_searches_and_a_bad_pattern_names_the_function():
    assert functions.regex_match("o\\.b", "foo.bar")
    assert not functions.regex_match("^bar", "foo.bar")
    with pytest.raises(functions.FunctionError, match="regexMatch: bad regular expression"):
        functions.regex_match("(", "x")


# -- timestamp ------------------------------------------------------------------------
MOMENT = datetime.datetime(2009, 11, 10, 23, 4, 5, 123400, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("layout", "go"),
    [
        ("2006-01-02T15:04:05Z07:00", "2009-11-10T23:04:05Z"),  # RFC3339
        ("2006-01-02T15:04:05.999999999Z07:00", "2009-11-10T23:04:05.1234Z"),  # RFC3339Nano
        ("Mon Jan _2 15:04:05 2006", "Tue Nov 10 23:04:05 2009"),  # ANSIC
        ("Mon, 02 Jan 2006 15:04:05 MST", "Tue, 10 Nov 2009 23:04:05 UTC"),  # RFC1123
        ("Mon, 02 Jan 2006 15:04:05 -0700", "Tue, 10 Nov 2009 23:04:05 +0000"),  # RFC1123Z
        ("3:04PM", "11:04PM"),  # Kitchen
        ("Jan _2 15:04:05.000", "Nov 10 23:04:05.123"),  # StampMilli
        ("Monday January 2 06 002 __2 pm", "Tuesday November 10 09 314 314 pm"),
        ("2006-01-02", "2009-11-10"),
    ],
)
def test_timestamps_take_go_layouts(layout, go):
    assert functions.go_time_format(MOMENT, layout) == go


def test_timestamp_defaults_to_rfc3339_and_unix_gives_seconds(monkeypatch):
    monkeypatch.setattr(functions, "utc_now", lambda: MOMENT)
    assert functions.timestamp() == "2009-11-10T23:04:05Z"
    assert functions.timestamp("unix") == "1257894245"


# -- grouping -------------------------------------------------------------------------
def test_by_key_groups_by_the_first_segment_and_strips_it():
    entries = [
        KVPair("elasticsearch/es1", "groups/elasticsearch/es1", "1"),
        KVPair("elasticsearch/es2", "groups/elasticsearch/es2", "1"),
        KVPair("redis/a/b", "groups/redis/a/b", "3"),
        KVPair("top", "groups/top", "dropped: nothing left after the first segment"),
    ]
    grouped = functions.by_key(entries)
    assert list(grouped) == ["elasticsearch", "redis"]
    assert {key: pair.value for key, pair in grouped["elasticsearch"].items()} == {"es1": "1", "es2": "1"}
    assert grouped["redis"]["a/b"].path == "groups/redis/a/b"


def test_explode_nests_entries_along_their_slashes():
    entries = [
        KVPair("admin/port", "c/admin/port", "1234"),
        KVPair("maxconns", "c/maxconns", "5"),
        KVPair("f/", "c/f/", ""),
    ]
    assert functions.explode(entries) == {"admin": {"port": "1234"}, "f": {}, "maxconns": "5"}
    assert functions.to_json(functions.explode(entries)) == '{"admin":{"port":"1234"},"f":{},"maxconns":"5"}'
    with pytest.raises(functions.FunctionError, match="explode: not a map: 'a/b'"):
        functions.explode([KVPair("a", "a", "1"), KVPair("a/b", "a/b", "2")])


def test_unescaped_json_leaves_html_characters_as_go_does_with_set_escape_html_false():
    assert functions.to_unescaped_json({"a": "<&>\u2028"}) == '{"a":"<&>\\u2028"}'
    assert functions.to_unescaped_json_pretty(["<"]) == '[\n  "<"\n]'
