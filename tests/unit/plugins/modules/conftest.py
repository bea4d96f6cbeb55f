"""The module runner: drive a module's main() with arguments and read its JSON result (community.hashi_vault's way)."""

import json

import pytest
from ansible.module_utils import _internal
from ansible.module_utils.testing import patch_module_args

CONSUL_VARIABLES = (
    "CONSUL_HTTP_ADDR",
    "CONSUL_HTTP_SSL",
    "CONSUL_HTTP_SSL_VERIFY",
    "CONSUL_HTTP_TOKEN",
    "CONSUL_HTTP_TOKEN_FILE",
    "CONSUL_CACERT",
    "CONSUL_CLIENT_CERT",
    "CONSUL_CLIENT_KEY",
)


@pytest.fixture(autouse=True)
def no_consul_environment(monkeypatch):
    """The connection options fall back to CONSUL_*: the tests set what they need, nothing leaks in."""
    for variable in CONSUL_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def run_module(capsys, monkeypatch):
    """run_module(module, args, check_mode=False, diff=False) -> the module's JSON result, success or failure."""
    # A module runs in a process of its own; tests that loaded controller plugins (lookups) earlier in this
    # one would otherwise send its warnings and deprecations to the controller's display, not its result.
    monkeypatch.setattr(_internal, "is_controller", False)

    def run(module, args, check_mode=False, diff=False):
        args = {**args, "_ansible_check_mode": check_mode, "_ansible_diff": diff}
        with patch_module_args(args), pytest.raises(SystemExit):
            module.main()
        return json.loads(capsys.readouterr().out)

    return run
