"""Role inputs that reach a systemd unit as they are: the preflight refuses a value that would add a unit line.

The renderer's preflight runs on the controller alone (tasks_from: preflight), so this needs no host.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def run_preflight(tmp_path, role, variables):
    playbook = tmp_path / "preflight.yml"
    task = {"ansible.builtin.include_role": {"name": f"dockyard.platform.{role}", "tasks_from": "preflight"}}
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".cache" / "collections"),
        "ANSIBLE_NOCOLOR": "1",
    }
    command = ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", f"@{tmp_path / 'vars.json'}"]
    command += ["-e", f"ansible_python_interpreter={sys.executable}", str(playbook)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)


@pytest.mark.parametrize("variable", ["renderer_install_dir", "renderer_config_dir"])
@pytest.mark.parametrize("value", ["/usr/lib/dockyard\nExecStartPre=/bin/touch /tmp/pwned", "relative/dir", "/a b"])
def test_the_renderer_refuses_a_unit_path_that_is_not_one_clean_absolute_path(tmp_path, variable, value):
    result = run_preflight(tmp_path, "renderer", {variable: value})
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"{variable} must be an absolute path" in output, output
    assert "changed=0" in output


def test_the_renderer_preflight_passes_its_defaults(tmp_path):
    result = run_preflight(tmp_path, "renderer", {})
    assert result.returncode == 0, result.stdout + result.stderr
