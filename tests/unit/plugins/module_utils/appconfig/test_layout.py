"""The app configuration contract (appconfig/layout.py): definitions, statuses and the names that become paths.

Everything in it is read from Consul and turned into paths on the node and in
containers, so besides named cases there are Hypothesis properties: valid
definitions round-trip through their JSON, and hostile strings never pass a
parser unless they lie in its grammar (an accepted destination is a clean
absolute path outside the kernel's and the platform's directories).
"""

import json
import posixpath
import string
import uuid

import pytest
from ansible_collections.dockyard.platform.plugins.module_utils.appconfig import layout
from ansible_collections.dockyard.platform.plugins.module_utils.appconfig.layout import (
    LayoutError,
    Status,
    Template,
    check_templates,
    parse_definition,
    parse_status,
)
from hypothesis import given, settings
from hypothesis import strategies as st

PROPERTY = settings(max_examples=300, derandomize=True, deadline=None)
TOKEN = "0123abcd-0000-4000-8000-0000000000aa"
SERVICE = "shop--0123456789ab"
APP_CONF = {"name": "app.conf", "contents": "{{ key(prefix ~ 'greeting') }}\n", "destination": "/etc/shop/app.conf"}


def template(**fields) -> dict:
    return {**APP_CONF, "prefix": "config/qa/shop/", **fields}


def document(**fields) -> dict:
    return {"app": "shop", "service": SERVICE, "token": TOKEN, "templates": [template()], **fields}


def definition_refusal(raw, service: str = SERVICE) -> str:
    with pytest.raises(LayoutError) as raised:
        parse_definition(raw if isinstance(raw, bytes) else json.dumps(raw).encode(), service)
    return str(raised.value)


def status_document(**fields) -> dict:
    return {
        "node": "node-1",
        "service": SERVICE,
        "rendered": True,
        "key_index": 42,
        "errors": {},
        "updated": 1.5,
        **fields,
    }


def status_refusal(fields: dict, node: str = "node-1", service: str = SERVICE) -> str:
    with pytest.raises(LayoutError) as raised:
        parse_status(json.dumps(fields).encode(), node, service)
    return str(raised.value)


# -- definitions: named cases -------------------------------------------------------------
def test_a_definition_parses_with_the_templates_defaults():
    definition = parse_definition(json.dumps(document()).encode(), SERVICE)
    assert definition.app == "shop" and definition.service == SERVICE and definition.token == TOKEN
    (only,) = definition.templates
    assert only == Template(
        name="app.conf",
        contents=APP_CONF["contents"],
        destination="/etc/shop/app.conf",
        prefix="config/qa/shop/",
        on_change="signal",
        signal="SIGHUP",
        max_drop=None,
    )
    assert (only.directory, only.file) == ("/etc/shop", "app.conf")
    assert definition.directories == ("/etc/shop",) and definition.directory_index(only) == 0


def test_signals_are_normalised_to_dockers_names():
    for given_signal in ("hup", "SIGHUP", "sighup", "HUP"):
        parsed = parse_definition(json.dumps(document(templates=[template(signal=given_signal)])).encode(), SERVICE)
        assert parsed.templates[0].signal == "SIGHUP"


def test_directories_are_sorted_and_each_template_knows_its_index():
    templates = [
        template(name="b.conf", destination="/srv/b/b.conf"),
        template(name="a.conf", destination="/etc/a/a.conf"),
        template(name="a2.conf", destination="/etc/a/a2.conf", on_change="restart", max_drop=1),
    ]
    definition = parse_definition(json.dumps(document(templates=templates)).encode(), SERVICE)
    assert definition.directories == ("/etc/a", "/srv/b")
    assert [definition.directory_index(item) for item in definition.templates] == [1, 0, 0]
    assert definition.templates[2].max_drop == 1.0


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"service": "other--0123456789ab"}, "names service 'other--0123456789ab', not the key's"),
        ({"app": "cart"}, f"service {SERVICE} is not a version of app cart"),
        ({"app": "../shop"}, ".app: expected 1 to 100 letters"),
        ({"token": "not-a-uuid"}, ".token: expected a Consul token (a UUID)"),
        ({"token": TOKEN.upper()}, ".token: expected a Consul token (a UUID)"),
        ({"templates": {}}, ".templates: expected a list"),
        ({"templates": []}, "expected 1 to 16 templates"),
        ({"templates": [template(name=f"f{n}", destination=f"/etc/d{n}/f") for n in range(17)]}, "1 to 16 templates"),
        ({"extra": 1}, "unknown field(s) extra"),
        ({"templates": ["x"]}, ".templates[0]: expected a mapping"),
        ({"templates": [template(owner="root")]}, ".templates[0]: unknown field(s) owner"),
        ({"templates": [template(contents=None)]}, ".templates[0].contents: expected the template's text"),
        ({"templates": [template(contents="x" * (64 * 1024 + 1))]}, ".templates[0].contents: expected the template's"),
        ({"templates": [template(contents="a\0b")]}, ".templates[0].contents: holds a NUL character"),
        ({"templates": [template(name="../x")]}, ".templates[0].name: expected 1 to 100 letters"),
        ({"templates": [template(destination="app.conf")]}, ".templates[0].destination: expected an absolute"),
        ({"templates": [template(destination="/app.conf")]}, ".templates[0].destination: expected a clean absolute"),
        ({"templates": [template(destination="/proc/self/x")]}, "/proc/self would hide or lie inside /proc"),
        ({"templates": [template(destination="/run/dockyard/x")]}, "/run/dockyard would hide or lie inside"),
        ({"templates": [template(destination="/run/x")]}, "/run would hide or lie inside /run/dockyard"),
        ({"templates": [template(destination="/etc/x")]}, "/etc would hide or lie inside /etc/hosts"),
        ({"templates": [template(destination="/etc/shop/../x")]}, ".destination: expected a clean absolute"),
        ({"templates": [template(prefix="/config/")]}, ".templates[0].prefix: expected a KV folder"),
        ({"templates": [template(prefix="config/qa/shop")]}, ".templates[0].prefix: expected a KV folder"),
        ({"templates": [template(prefix="config/../x/")]}, ".templates[0].prefix: segment '..'"),
        ({"templates": [template(on_change="reload")]}, ".templates[0].on_change: expected one of signal, restart"),
        ({"templates": [template(signal="SIGKILL")]}, ".templates[0].signal: expected one of SIGHUP"),
        ({"templates": [template(signal=1)]}, ".templates[0].signal: expected one of SIGHUP"),
        ({"templates": [template(max_drop=1.5)]}, ".templates[0].max_drop: expected a share between 0 and 1"),
        ({"templates": [template(max_drop=True)]}, ".templates[0].max_drop: expected a share between 0 and 1"),
        ({"templates": [template(max_drop="50%")]}, ".templates[0].max_drop: expected a share between 0 and 1"),
    ],
)
def test_a_bad_definition_is_refused_naming_the_field(fields, named):
    message = definition_refusal(document(**fields))
    assert message.startswith(f"app config of {SERVICE}")
    assert named in message


def test_a_definition_that_is_not_a_json_object_is_refused():
    assert "not JSON" in definition_refusal(b"{")
    assert "not JSON" in definition_refusal(b"\xff\xfe")
    assert "expected a JSON object" in definition_refusal(b"[]")
    assert f"above {layout.MAX_DEFINITION_BYTES} bytes" in definition_refusal(b" " * (layout.MAX_DEFINITION_BYTES + 1))


def test_a_bad_service_key_is_refused_even_when_the_document_agrees():
    for service in ("shop--../x", "shop--a/b", "shop--"):
        assert "app config of" in definition_refusal(document(service=service), service)


# Found by these two tests: json.loads raises RecursionError (not a ValueError) past Python's nesting limit,
# which neither the agent (except LayoutError) nor the deployer (suppress LayoutError) catches. Both documents stay
# within MAX_DEFINITION_BYTES.
DEEPLY_NESTED = b"[" * 100_000 + b"]" * 100_000


def test_a_deeply_nested_definition_is_a_layout_error_not_a_crash():
    nested = b'{"templates":' + DEEPLY_NESTED + b"}"
    assert len(nested) < layout.MAX_DEFINITION_BYTES
    assert "not JSON" in definition_refusal(nested)


def test_a_deeply_nested_status_is_a_layout_error_not_a_crash():
    assert "not JSON" in status_refusal_raw(DEEPLY_NESTED)


def status_refusal_raw(raw: bytes) -> str:
    with pytest.raises(LayoutError) as raised:
        parse_status(raw, "node-1", SERVICE)
    return str(raised.value)


# -- check_templates ------------------------------------------------------------------------
def typed(**fields) -> Template:
    return layout.parse_template(template(**fields), "t")


def test_check_templates_takes_unique_names_destinations_and_apart_directories():
    templates = (typed(), typed(name="b.conf", destination="/etc/shop/b.conf"), typed(name="c", destination="/srv/c"))
    assert check_templates(templates, "config") is templates


@pytest.mark.parametrize(
    ("templates", "named"),
    [
        ((), "config: expected 1 to 16 templates"),
        (
            (typed(), typed(destination="/etc/other/app.conf")),
            "each template's name must be unique, repeated: app.conf",
        ),
        ((typed(), typed(name="b")), "each template's destination must be unique, repeated: /etc/shop/app.conf"),
        (
            (typed(), typed(name="b", destination="/etc/shop/conf.d/b")),
            "directory /etc/shop/conf.d lies inside /etc/shop",
        ),
        ((typed(destination="/srv/a/b/c/x"), typed(name="b", destination="/srv/a/y")), "/srv/a/b/c lies inside /srv/a"),
    ],
)
def test_check_templates_refuses_repeats_and_nested_directories(templates, named):
    with pytest.raises(LayoutError) as raised:
        check_templates(templates, "config")
    assert named in str(raised.value)


def test_directories_that_only_share_a_name_start_do_not_nest():
    templates = (typed(destination="/srv/app/x"), typed(name="y", destination="/srv/application/y"))
    assert check_templates(templates, "config") == templates


# -- statuses ---------------------------------------------------------------------------------
def test_a_status_round_trips_and_is_ready_only_when_rendered_without_errors():
    status = parse_status(json.dumps(status_document()).encode(), "node-1", SERVICE)
    assert status == Status("node-1", SERVICE, True, 42, (), 1.5) and status.ready
    assert parse_status(status.to_json(), "node-1", SERVICE) == status
    failing = parse_status(
        json.dumps(status_document(errors={"b.conf": "boom", "a.conf": "x" * 5000}, key_index=None)).encode(),
        "node-1",
        SERVICE,
    )
    assert failing.errors == (("a.conf", "x" * layout.MAX_ERROR_TEXT), ("b.conf", "boom"))
    assert failing.key_index is None and not failing.ready
    assert not parse_status(json.dumps(status_document(rendered=False)).encode(), "node-1", SERVICE).ready


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"node": "node-2"}, "not the status its key names"),
        ({"service": "shop--ffffffffffff"}, "not the status its key names"),
        ({"node": None}, "not the status its key names"),
        ({"rendered": "yes"}, ".rendered: expected true or false"),
        ({"rendered": 1}, ".rendered: expected true or false"),
        ({"key_index": -1}, ".key_index: expected a Consul index"),
        ({"key_index": True}, ".key_index: expected a Consul index"),
        ({"key_index": "3"}, ".key_index: expected a Consul index"),
        ({"key_index": 3.0}, ".key_index: expected a Consul index"),
        ({"errors": ["app.conf"]}, ".errors: expected template name -> message"),
        ({"errors": {"app.conf": 1}}, ".errors: expected template name -> message"),
        ({"errors": {"../app.conf": "x"}}, ".errors: expected 1 to 100 letters"),
        ({"updated": True}, ".updated: expected a time"),
        ({"updated": "now"}, ".updated: expected a time"),
        ({"updated": None}, ".updated: expected a time"),
    ],
)
def test_a_bad_status_is_refused_naming_the_field(fields, named):
    message = status_refusal(status_document(**fields))
    assert message.startswith(f"app config status of {SERVICE} on node-1")
    assert named in message


def test_a_status_that_is_not_a_json_object_is_refused():
    assert "not JSON" in status_refusal_raw(b"{")
    assert "not the status its key names" in status_refusal_raw(b"[]")


# -- names of things --------------------------------------------------------------------------
def test_keys_and_paths_of_a_service():
    assert layout.definition_key("dockyard/", SERVICE) == f"dockyard/app-config/{SERVICE}"
    assert layout.status_key("dockyard/", "node-1", SERVICE) == f"dockyard/app-config-status/node-1/{SERVICE}"
    assert layout.lock_key("dockyard/", "shop") == "dockyard/app-config-locks/shop"
    assert layout.service_dir(SERVICE) == f"/var/lib/dockyard/app-config/{SERVICE}"
    assert layout.rendered_dir(SERVICE, 1, "/b") == f"/b/{SERVICE}/rendered/1"
    assert layout.files_dir(SERVICE, 0, "/b") == f"/b/{SERVICE}/files/0"
    assert layout.token_dir(SERVICE, "/b") == f"/b/{SERVICE}/token"
    assert layout.state_dir(SERVICE, "/b") == f"/b/{SERVICE}/state"
    assert layout.app_policy_name("shop", "qa") == "dockyard-app-config-qa-shop"
    assert layout.app_policy_name("shop", None) == "dockyard-app-config-shop"


BAD_NAMES = ["", ".", "..", "../x", "a/b", "/a", "a\n", "a\0", "-a", " a", "a b", "ä", "\u0663", None, 3, ["a"]]


@pytest.mark.parametrize("bad", [*BAD_NAMES, "a.b", "a--", "a__b-"])
def test_the_service_helpers_refuse_a_bad_service(bad):
    for helper in (
        lambda: layout.definition_key("dockyard/", bad),
        lambda: layout.status_key("dockyard/", "node-1", bad),
        lambda: layout.service_dir(bad),
        lambda: layout.rendered_dir(bad, 0),
        lambda: layout.files_dir(bad, 0),
        lambda: layout.token_dir(bad),
        lambda: layout.state_dir(bad),
    ):
        with pytest.raises(LayoutError, match="service: expected a Swarm service name"):
            helper()


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_status_and_lock_keys_refuse_a_bad_node_or_app(bad):
    with pytest.raises(LayoutError, match="node: expected a node name"):
        layout.status_key("dockyard/", bad, SERVICE)
    with pytest.raises(LayoutError, match="app: expected 1 to 100 letters"):
        layout.lock_key("dockyard/", bad)


# -- properties -------------------------------------------------------------------------------
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)
segments = st.from_regex(r"[A-Za-z0-9_@+.-]{1,12}", fullmatch=True).filter(lambda text: text not in (".", ".."))
prefix_tails = st.lists(st.from_regex(r"[A-Za-z0-9_.@+-]{1,12}", fullmatch=True), max_size=3).filter(
    lambda parts: not {".", ".."} & set(parts)
)
signals = st.sampled_from([*layout.CHANGE_SIGNALS, "hup", "usr1", "SigTerm", "winch"])
shares = st.one_of(st.none(), st.integers(0, 1), st.floats(0, 1))
services = st.from_regex(r"[A-Za-z0-9]{1,8}(?:[-_]{1,2}[A-Za-z0-9]{1,8}){0,3}", fullmatch=True)


@st.composite
def definitions(draw) -> tuple:
    """(service, document): 1-16 templates with unique names and destinations in directories that do not nest."""
    app = draw(st.from_regex(r"[A-Za-z0-9]{1,10}", fullmatch=True))
    service = f"{app}--{draw(services)}"
    # Directories at one depth under one top directory differ, so none lies inside another.
    top = draw(st.sampled_from(["srv", "opt", "config", "home"]))
    directories = draw(st.lists(segments, min_size=1, max_size=4, unique=True))
    count = draw(st.integers(1, layout.MAX_TEMPLATES))
    file_names = draw(st.lists(names, min_size=count, max_size=count, unique=True))
    templates = [
        {
            "name": file_name,
            "contents": draw(st.text(st.characters(blacklist_characters="\0"), max_size=40)),
            "destination": f"/{top}/{directories[index % len(directories)]}/{file_name}",
            "prefix": "config/" + "".join(f"{part}/" for part in draw(prefix_tails)),
            "on_change": draw(st.sampled_from(layout.ON_CHANGE)),
            "signal": draw(signals),
            "max_drop": draw(shares),
        }
        for index, file_name in enumerate(file_names)
    ]
    return service, {
        "app": app,
        "service": service,
        "token": str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
        "templates": templates,
    }


# Each example draws up to 16 templates: fewer of them cover as much.
@settings(max_examples=60, derandomize=True, deadline=None)
@given(definitions())
def test_valid_definitions_round_trip_through_their_json(case):
    service, raw = case
    definition = parse_definition(json.dumps(raw).encode(), service)
    assert len(definition.templates) == len(raw["templates"])
    assert parse_definition(definition.to_json(), service) == definition
    assert parse_definition(definition.to_json(), service).to_json() == definition.to_json()
    for item in definition.templates:
        assert definition.directories[definition.directory_index(item)] == item.directory


# Hostile strings: made of the pieces that break paths and keys, and anything at all.
hostile_pieces = st.sampled_from(
    [
        "/",
        "//",
        ".",
        "..",
        "a",
        "Z",
        "0",
        "-",
        "_",
        "@",
        "+",
        " ",
        "\n",
        "\t",
        "\0",
        "\\",
        "%2e",
        "ä",
        "\u0663",
        "\uff0e",
        "proc",
        "sys",
        "dev",
        "run",
        "dockyard",
        "etc",
        "hosts",
        "/proc",
        "/run/dockyard",
        "config",
        "SIG",
        "HUP",
    ]
)
hostile = st.one_of(st.lists(hostile_pieces, max_size=12).map("".join), st.text(max_size=30))
NAME_CHARACTERS = set(string.ascii_letters + string.digits + "_.-")
FORBIDDEN = ("/proc", "/sys", "/dev", "/run/dockyard", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf")


def accepted(parser, value, *args):
    try:
        return parser(value, *args)
    except LayoutError:
        return None


@PROPERTY
@given(hostile)
def test_an_accepted_destination_is_a_clean_absolute_path_outside_forbidden_directories(value):
    parsed = accepted(layout.parse_destination, value, "d")
    if parsed is None:
        return
    directory, name = parsed
    assert value.startswith("/") and not value.startswith("//") and posixpath.normpath(value) == value
    assert ".." not in value.split("/") and "." not in value.split("/") and "" not in value[1:].split("/")
    assert value.isascii() and value.isprintable() and " " not in value
    assert directory != "/" and posixpath.join(directory, name) == value
    for forbidden in FORBIDDEN:
        assert directory != forbidden and not directory.startswith(forbidden + "/")
        assert not forbidden.startswith(directory + "/")


@PROPERTY
@given(hostile)
def test_an_accepted_name_service_node_or_prefix_is_in_its_grammar(value):
    for parser in (layout.parse_name, layout.parse_node):
        if accepted(parser, value, "n") is not None:
            assert set(value) <= NAME_CHARACTERS and value[0].isalnum()
            assert "/" not in value and value not in (".", "..") and 1 <= len(value) <= 100 and value[0].isalnum()
    if accepted(layout.parse_service, value, "s") is not None:
        assert set(value) <= NAME_CHARACTERS - {"."}
        assert layout.service_dir(value, "/b") == f"/b/{value}" == posixpath.normpath(f"/b/{value}")
    if accepted(layout.parse_prefix, value, "p") is not None:
        parts = value.split("/")
        assert parts[-1] == "" and all(parts[:-1]) and not {".", ".."} & set(parts)
        assert value.isascii() and value.isprintable() and " " not in value
    if accepted(layout.parse_signal, value, "g") is not None:
        assert layout.parse_signal(value, "g") in layout.CHANGE_SIGNALS


@PROPERTY
@given(hostile, hostile)
def test_no_path_or_key_escapes_through_the_helpers(node, service):
    try:
        key = layout.status_key("dockyard/", node, service)
    except LayoutError:
        key = None
    if key is not None:
        assert key.split("/") == ["dockyard", "app-config-status", node, service]
    try:
        path = layout.service_dir(service)
    except LayoutError:
        return
    assert posixpath.normpath(path) == path and posixpath.dirname(path) == layout.BASE_DIR
