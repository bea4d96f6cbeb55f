# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""consul-template's helper functions that read nothing from Consul, with its (Go's) semantics.

- JSON as Go's encoding/json writes it: compact, map keys sorted, <, >, &,
  U+2028 and U+2029 escaped as \\u003c..., floats in Go's shortest form.
- base64 and sha256 work on the bytes a value came from (see
  dependencies.decode_value), so binary values round-trip.
- regexReplaceAll expands $1, ${name} and $$ as Go's Regexp.Expand does.
- timestamp takes Go layouts (the reference time Mon Jan 2 15:04:05 -0700 MST 2006), always in UTC.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import decimal
import hashlib
import json
import math
import re

try:
    import yaml

    YAML_IMPORT_ERROR = None
except ImportError as _error:  # pragma: no cover - the role installs python3-yaml
    yaml = None
    YAML_IMPORT_ERROR = _error

from .dependencies import decode_value, encode_text


class FunctionError(ValueError):
    """A helper function was given something it cannot work on; the message names the function."""


# -- JSON -----------------------------------------------------------------------------
_GO_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_GO_HTML = frozenset("<>&")


def _go_string(text: str, escape_html: bool = True) -> str:
    out = ['"']
    for char in text:
        if char in _GO_SHORT_ESCAPES:
            out.append(_GO_SHORT_ESCAPES[char])
        elif char < " " or char in "\u2028\u2029" or (escape_html and char in _GO_HTML):
            out.append(f"\\u{ord(char):04x}")
        elif "\ud800" <= char <= "\udfff":
            out.append("\\ufffd")  # a byte that is not UTF-8: Go writes the replacement character
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _go_float(number: float) -> str:
    if math.isnan(number) or math.isinf(number):
        raise FunctionError(f"toJSON: unsupported value {number!r}")
    magnitude = abs(number)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = repr(number)  # the shortest digits, in exponent form as Go's 'e' format
        mantissa, _e, exponent = text.partition("e")
        sign = exponent[0] if exponent[0] in "+-" else "+"
        digits = exponent.lstrip("+-").lstrip("0").rjust(2, "0")
        if sign == "-" and len(digits) == 2 and digits[0] == "0":
            digits = digits[1]  # Go writes e-07 as e-7
        return f"{mantissa}e{sign}{digits}"
    return format(decimal.Decimal(repr(number)).normalize(), "f")


def _plain(value):
    """Template values (entries, catalog records, Jinja's markup) as JSON-able Python values."""
    if hasattr(value, "as_json"):
        return value.as_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    return value


def _go_key(key) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    raise FunctionError(f"toJSON: a map key must be a string or an integer, got {type(key).__name__}")


def go_json(value, indent: str = "", escape_html: bool = True, _level: int = 0) -> str:
    """json.Marshal (indent "") or json.MarshalIndent(value, "", indent) of value, as Go writes it.

    escape_html False is an Encoder with SetEscapeHTML(false) (consul-template's toUnescapedJSON).
    """
    value = _plain(value)
    newline = "\n" + indent * (_level + 1) if indent else ""
    closing = "\n" + indent * _level if indent else ""
    colon = ": " if indent else ":"
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return _go_string(value, escape_html)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = sorted((_go_key(key), item) for key, item in value.items())
        parts = [
            f"{_go_string(key, escape_html)}{colon}{go_json(item, indent, escape_html, _level + 1)}"
            for key, item in items
        ]
        return "{" + newline + ("," + newline).join(parts) + closing + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        parts = [go_json(item, indent, escape_html, _level + 1) for item in value]
        return "[" + newline + ("," + newline).join(parts) + closing + "]"
    raise FunctionError(f"toJSON: cannot encode a {type(value).__name__}")


def to_json(value) -> str:
    return go_json(value)


def to_json_pretty(value) -> str:
    return go_json(value, "  ")


def to_unescaped_json(value) -> str:
    return go_json(value, escape_html=False)


def to_unescaped_json_pretty(value) -> str:
    return go_json(value, "  ", escape_html=False)


def _text(value) -> str:
    """A KV entry's value, or the value itself, as text."""
    if hasattr(value, "value") and hasattr(value, "path"):
        value = value.value
    return "" if value is None else str(value)


def parse_json(value):
    """The decoded JSON; an empty value gives an empty map, as in consul-template."""
    text = _text(value)
    if text == "":
        return {}
    try:
        return json.loads(text)
    except ValueError as error:
        raise FunctionError(f"parseJSON: {error}") from None


# -- YAML -----------------------------------------------------------------------------
def _yaml():
    if yaml is None:
        raise FunctionError(f"parseYAML/toYAML need PyYAML (Debian package python3-yaml): {YAML_IMPORT_ERROR}")
    return yaml


def parse_yaml(value):
    """The decoded YAML (safe loader); an empty value gives an empty map, as in consul-template."""
    text = _text(value)
    if text == "":
        return {}
    try:
        return _yaml().safe_load(text)
    except _yaml().YAMLError as error:
        raise FunctionError(f"parseYAML: {error}") from None


def to_yaml(value) -> str:
    """YAML as Go's yaml.v2 writes it: block style, 2-space indent, sorted keys, quoted strings double-quoted."""
    module = _yaml()

    class GoStyleDumper(module.SafeDumper):
        def choose_scalar_style(self):
            style = super().choose_scalar_style()
            return '"' if style == "'" else style

    def represent_text(dumper, data):
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    GoStyleDumper.add_representer(str, represent_text)
    text = module.dump(
        _plain_tree(value), Dumper=GoStyleDumper, default_flow_style=False, sort_keys=True, allow_unicode=True
    )
    return text.strip()


def _plain_tree(value):
    value = _plain(value)
    if isinstance(value, dict):
        return {_go_key(key): _plain_tree(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_tree(item) for item in value]
    return value


# -- base64, sha256 -------------------------------------------------------------------
def base64_encode(value) -> str:
    return base64.b64encode(encode_text(_text(value))).decode("ascii")


def base64_url_encode(value) -> str:
    return base64.urlsafe_b64encode(encode_text(_text(value))).decode("ascii")


def _base64_decode(name: str, value, alphabet: bytes) -> str:
    # Go's DecodeString skips \r and \n; any other byte outside the alphabet is an error.
    text = _text(value).replace("\r", "").replace("\n", "")
    if not re.fullmatch("[A-Za-z0-9" + re.escape(alphabet.decode()) + "]*={0,2}", text) or len(text) % 4:
        raise FunctionError(f"{name}: illegal base64 data in {text[:40]!r}")
    try:
        raw = base64.b64decode(text, altchars=alphabet, validate=True)
    except binascii.Error as error:
        raise FunctionError(f"{name}: {error}") from None
    return decode_value(raw)


def base64_decode(value) -> str:
    return _base64_decode("base64Decode", value, b"+/")


def base64_url_decode(value) -> str:
    return _base64_decode("base64URLDecode", value, b"-_")


def sha256_hex(value) -> str:
    return hashlib.sha256(encode_text(_text(value))).hexdigest()


# -- regular expressions --------------------------------------------------------------
def _compile(name: str, pattern: str):
    try:
        return re.compile(pattern)
    except re.error as error:
        raise FunctionError(f"{name}: bad regular expression {pattern!r}: {error}") from None


def regex_match(pattern: str, value) -> bool:
    """regexMatch(pattern, text): does pattern match anywhere in text (Go's MatchString)."""
    return _compile("regexMatch", pattern).search(_text(value)) is not None


_GO_VARIABLE = re.compile(r"\{(\w+)\}|(\w+)")


def _go_group(match, name: str) -> str:
    if name.isdigit():
        number = int(name)
        found = match.group(number) if number <= match.re.groups else None
    else:
        found = match.group(name) if name in match.re.groupindex else None
    return found or ""


def go_expand(template: str, match) -> str:
    """Go's Regexp.Expand: $1 and ${1}, $name and ${name} (as long as possible), $$ for a $."""
    out, position = [], 0
    while position < len(template):
        dollar = template.find("$", position)
        if dollar < 0:
            out.append(template[position:])
            break
        out.append(template[position:dollar])
        if template.startswith("$$", dollar):
            out.append("$")
            position = dollar + 2
            continue
        variable = _GO_VARIABLE.match(template, dollar + 1)
        if variable is None:
            out.append("$")  # malformed: Go keeps the $ as text
            position = dollar + 1
            continue
        out.append(_go_group(match, variable.group(1) or variable.group(2)))
        position = variable.end()
    return "".join(out)


def regex_replace_all(pattern: str, replacement: str, value) -> str:
    """regexReplaceAll(pattern, replacement, text) with Go's rules (an empty match right after a match is skipped)."""
    compiled = _compile("regexReplaceAll", pattern)
    text = _text(value)
    out, position, last_end = [], 0, -1
    for match in compiled.finditer(text):
        start, end = match.span()
        if start == end == last_end:
            continue
        out.append(text[position:start])
        out.append(go_expand(replacement, match))
        position, last_end = end, end
    out.append(text[position:])
    return "".join(out)


# -- timestamp ------------------------------------------------------------------------
_LAYOUT = re.compile(
    r"January|Jan|Monday|Mon|MST|002|0[1-6]|15|1|_2006|2006|__2|_2|2|3|4|5|PM|pm"
    r"|[-Z](?:070000|07:00:00|0700|07:00|07)|[.,](?:0+|9+)(?![0-9])"
)
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _layout_chunk(chunk: str, moment: datetime.datetime) -> str:
    hour12 = moment.hour % 12 or 12
    fixed = {
        "January": _MONTHS[moment.month - 1],
        "Jan": _MONTHS[moment.month - 1][:3],
        "Monday": _DAYS[moment.weekday()],
        "Mon": _DAYS[moment.weekday()][:3],
        "MST": "UTC",
        "002": f"{moment.timetuple().tm_yday:03d}",
        "__2": f"{moment.timetuple().tm_yday:3d}",
        "01": f"{moment.month:02d}",
        "02": f"{moment.day:02d}",
        "03": f"{hour12:02d}",
        "04": f"{moment.minute:02d}",
        "05": f"{moment.second:02d}",
        "06": f"{moment.year % 100:02d}",
        "15": f"{moment.hour:02d}",
        "1": str(moment.month),
        "_2006": f"_{moment.year:04d}",
        "2006": f"{moment.year:04d}",
        "_2": f"{moment.day:2d}",
        "2": str(moment.day),
        "3": str(hour12),
        "4": str(moment.minute),
        "5": str(moment.second),
        "PM": "PM" if moment.hour >= 12 else "AM",
        "pm": "pm" if moment.hour >= 12 else "am",
    }
    if chunk in fixed:
        return fixed[chunk]
    if chunk[0] == "Z":
        return "Z"  # always UTC
    if chunk[0] == "-":
        return "+" + re.sub("[0-9]", "0", chunk[1:])
    digits = f"{moment.microsecond * 1000:09d}"[: len(chunk) - 1]
    if chunk[1] == "9":
        digits = digits.rstrip("0")
        return chunk[0] + digits if digits else ""
    return chunk[0] + digits


def go_time_format(moment: datetime.datetime, layout: str) -> str:
    """moment (UTC) formatted with a Go layout, as Go's Time.Format does."""
    return _LAYOUT.sub(lambda chunk: _layout_chunk(chunk.group(0), moment), layout)


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def timestamp(layout: str | None = None) -> str:
    """The current time in UTC: RFC 3339 without a layout, Unix seconds for "unix", else the Go layout."""
    moment = utc_now()
    if layout is None:
        return go_time_format(moment, "2006-01-02T15:04:05Z07:00")
    if layout == "unix":
        return str(int(moment.timestamp()))
    return go_time_format(moment, str(layout))


# -- grouping -------------------------------------------------------------------------
def by_key(entries) -> dict:
    """tree() entries grouped by their first key segment, that segment stripped (consul-template's byKey)."""
    groups = {}
    for entry in entries or ():
        top, _slash, rest = entry.key.partition("/")
        if rest:
            groups.setdefault(top, {})[rest] = entry.relative(rest)
    return {top: dict(sorted(group.items())) for top, group in sorted(groups.items())}


def explode(entries) -> dict:
    """ls()/tree() entries as nested maps along the slashes of their keys (consul-template's explode)."""
    tree = {}
    for entry in entries or ():
        node, parts = tree, entry.key.split("/")
        for depth, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise FunctionError(f"explode: not a map: {entry.key!r}: {'/'.join(parts[: depth + 1])!r} has a value")
        if parts[-1]:
            node[parts[-1]] = entry.value
    return _sorted_maps(tree)


def _sorted_maps(value):
    if isinstance(value, dict):
        return {key: _sorted_maps(item) for key, item in sorted(value.items())}
    return value


def by_tag(services) -> dict:
    """service()/services() records grouped by tag, tags in order (consul-template's byTag)."""
    groups = {}
    for service in services or ():
        for tag in service.Tags:
            groups.setdefault(tag, []).append(service)
    return dict(sorted(groups.items()))
