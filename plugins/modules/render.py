#!/usr/bin/python
# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: render
short_description: Render one Jinja2 template from Consul KV once
version_added: 0.1.0
description:
  - Renders one template with the Dockyard renderer's engine (the same code the renderer daemon runs) and writes the
    result atomically (temporary file in the destination's directory, fsync, rename) when it differs from the file
    on the host.
  - Templates read Consul KV with C(key(path)), C(key_or_default(path, default)), C(ls(prefix)) and C(tree(prefix)),
    and may use the filters C(parse_json) and C(to_json).
  - Fetching what the template reads, writing the candidate, checking it and swapping it in is the very code the
    daemon runs (C(renderer.runner.complete) and C(renderer.render.swap)); unlike the daemon, the module does not
    leave out entries a failing O(validate) is caught on, it fails.
  - The task fails, and leaves the destination as it was, when Consul cannot be reached, a key read with C(key) does
    not exist, the template raises (for example an undefined variable), or O(validate) rejects the candidate.
  - Consul connection options not given fall back to the standard environment variables on the host that runs the
    module (see each option).
author:
  - Dockyard engineers (@dockyard)
requirements:
  - jinja2 (Debian package python3-jinja2) on the host that runs the module
extends_documentation_fragment:
  - dockyard.platform.consul
attributes:
  action_group:
    support: full
    description: Takes its Consul connection options from C(module_defaults) for the group.
    membership:
      - dockyard.platform.consul
  check_mode:
    support: full
    description: Reports whether the file would change without writing it; O(validate) is not run in check mode.
  diff_mode:
    support: full
    description:
      - Shows the file before and after.
      - When the template read a key of O(secret_keys), the diff shows only the checksums of the two versions, never
        their text.
  idempotent:
    support: full
    description: Writes nothing when the rendered content, owner, group and mode already match.
options:
  src:
    description:
      - Path on the managed host of the template to render.
      - Mutually exclusive with O(content).
    type: path
  content:
    description:
      - The template text itself. Mark it C(!unsafe) (or wrap it in C({% raw %})) so that Ansible does not evaluate
        it first.
      - Mutually exclusive with O(src).
    type: str
  dest:
    description: Path of the file to write.
    type: path
    required: true
  owner:
    description: Owner of O(dest); the existing file's owner (or the module's user for a new file) when not given.
    type: str
  group:
    description: Group of O(dest); the existing file's group (or the module's group for a new file) when not given.
    type: str
  mode:
    description:
      - Mode of O(dest), as an octal string such as V("0640"), a number (YAML C(0640) unquoted), or a symbolic mode
        such as V(u=rw,g=r,o=); the existing mode (V("0644") for a new file) when not given.
      - A new or replaced file is created with this mode, so it never exists with a wider one, not even for a moment.
    type: raw
  validate:
    description:
      - A command run on the candidate file before it replaces O(dest), with V(%s) standing for the candidate's path
        (V(%%) for a literal V(%)), for example V(haproxy -c -f %s). A non-zero exit leaves O(dest) as it was and
        fails the task.
      - The command is split into arguments as a shell would, and run without a shell; the renderer daemon's C(check)
        setting takes the same placeholder.
    type: str
  address:
    description:
      - Consul's HTTP address, V(host:port) or V(http://host:port) or V(https://host:port). A scheme in the address
        wins over O(use_ssl).
      - Credentials (V(user:password@)) or a path in the address are refused; give an ACL token in O(token) or
        O(token_file).
      - Falls back to the E(CONSUL_HTTP_ADDR) environment variable.
      - The alias O(consul_address) is deprecated and will be removed in 1.0.0.
    type: str
    default: 127.0.0.1:8500
    aliases: [consul_address]
  consul_scheme:
    description:
      - Deprecated, will be removed in 1.0.0; use O(use_ssl) or an V(https://) O(address).
      - V(https) sets O(use_ssl); V(http) clears it.
    type: str
    choices: [http, https]
  secret_keys:
    description:
      - Patterns (shell-style, as in C(fnmatch), matched against whole keys such as V(config/shop/db/password)) of the
        Consul keys whose values are secret. V(*) makes every key secret.
      - When the template reads such a key (with C(key), C(key_or_default), or C(ls)/C(tree) of a folder holding it),
        the diff shows no file text, only checksums (the file's earlier text may hold an earlier secret that cannot
        be recognised), and the key's value is masked wherever else it would show in the result, for example in the
        output of O(validate).
      - The task keyword C(diff) set to V(false) hides the diff whatever the keys.
    type: list
    elements: str
    default: []
seealso:
  - name: The renderer
    description: The daemon that keeps templates rendered, with quiescence, checks and reload commands.
    link: https://example.invalid/dockyard/platform/docs/renderer.md
"""

EXAMPLES = r"""
- name: Render the HAProxy configuration from Consul once, validated before it goes live
  dockyard.platform.render:
    src: /etc/dockyard/renderer/templates/haproxy.cfg.j2
    dest: /etc/haproxy/haproxy.cfg
    mode: "0644"
    validate: haproxy -c -f %s
    address: 127.0.0.1:8500
  notify: Reload HAProxy

- name: Render an app's settings from its KV folder
  dockyard.platform.render:
    content: !unsafe |
      {% for item in tree('config/shop') %}{{ item.key }}={{ item.value }}
      {% endfor %}
    dest: /etc/shop/settings.env
    owner: root
    group: root
    mode: "0640"
    token: "{{ consul_read_token }}"
    secret_keys:
      - config/shop/db/*

- name: Render through a TLS agent, the connection set once for the play
  module_defaults:
    group/dockyard.platform.consul:
      address: https://127.0.0.1:8501
      ca_path: /etc/consul.d/tls/ca.pem
      token_file: /etc/dockyard/consul-token
  block:
    - name: Render the app's settings
      dockyard.platform.render:
        src: /etc/shop/settings.env.j2
        dest: /etc/shop/settings.env
        mode: "0640"
"""

RETURN = r"""
dest:
  description: The destination path.
  returned: always
  type: str
  sample: /etc/haproxy/haproxy.cfg
checksum:
  description: SHA-1 of the rendered content.
  returned: success
  type: str
  sample: 2aae6c35c94fcfb415dbe95f408b9ce91ee846ed
dependencies:
  description: The Consul reads the template made, as V(key(path)) or V(prefix(prefix/)).
  returned: success
  type: list
  elements: str
  sample: ["key(config/shop/name)", "prefix(dockyard/instances/shop/)"]
rc:
  description: On a failed O(validate), its exit code.
  returned: failure
  type: int
  sample: 1
stdout:
  description: On a failed O(validate), what it wrote (standard output and error together), secret values masked.
  returned: failure
  type: str
  sample: "[ALERT] config : parsing [/etc/haproxy/.haproxy.cfg.k2j3.candidate:12] : unknown keyword 'bind2'"
"""

# Imports follow the documentation, as ansible-test validate-modules requires.
import fnmatch
import hashlib
import os
import re
import shlex
import stat
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.dockyard.platform.plugins.module_utils._consul import (
    CONNECTION_ARGUMENT_SPEC,
    CONNECTION_REQUIRED_TOGETHER,
    ConfigError,
    ConsulError,
    client_from_params,
)

try:
    from ansible_collections.dockyard.platform.plugins.module_utils.renderer import (
        dependencies as renderer_dependencies,
    )
    from ansible_collections.dockyard.platform.plugins.module_utils.renderer import render as renderer_files
    from ansible_collections.dockyard.platform.plugins.module_utils.renderer import runner as renderer_runner
    from ansible_collections.dockyard.platform.plugins.module_utils.renderer import template as renderer_template
    from ansible_collections.dockyard.platform.plugins.module_utils.renderer.brain import Brain
    from ansible_collections.dockyard.platform.plugins.module_utils.renderer.commands import names_candidate

    ENGINE_IMPORT_ERROR = None
except ImportError:
    ENGINE_IMPORT_ERROR = traceback.format_exc()

OCTAL_MODE = "^[0-7]{1,4}$"
DEPRECATED_IN = dict(version="1.0.0", collection_name="dockyard.platform")


class OneShotRender:
    """Render once: fetch until complete, compare, and swap through the candidate's check (the daemon's code)."""

    def __init__(self, module):
        self.module = module
        self.dest = module.params["dest"]
        self.check_mode_option()
        self.template = renderer_template.Template("render", self._source())
        self.secret_keys = []  # keys of secret_keys the template read
        params = dict(module.params)
        if params["consul_scheme"] is not None:
            params["use_ssl"] = params["consul_scheme"] == "https"
        self.client = client_from_params(params)

    def check_mode_option(self):
        """Fails unless mode is a number, an octal string or a symbolic mode (checked on a stand-in file)."""
        module = self.module
        mode = module.params["mode"]
        if mode is None or (isinstance(mode, int) and not isinstance(mode, bool)):
            if mode is not None and not 0 <= mode <= 0o7777:
                module.fail_json(msg=f"mode must be between 0 and 07777, got {mode:o}")
            return
        if not isinstance(mode, str):
            module.fail_json(msg=f"mode must be an octal string such as 0644 or a symbolic mode, got {mode!r}")
        if re.match(OCTAL_MODE + r"\Z", mode):
            return
        try:
            module._symbolic_mode_to_octal(os.stat_result((stat.S_IFREG | 0o644,) + (0,) * 9), mode)
        except ValueError:
            module.fail_json(
                msg=f"mode must be an octal string such as 0644 or a symbolic mode such as u=rw,g=r, got {mode}"
            )

    def _source(self):
        if self.module.params["content"] is not None:
            return self.module.params["content"]
        try:
            # newline="": a CRLF in the template stays a CRLF in the file, as consul-template keeps it.
            with open(self.module.params["src"], encoding="utf-8", newline="") as handle:
                return handle.read()
        except OSError as error:
            self.module.fail_json(
                msg="cannot read the template {}: {}".format(self.module.params["src"], to_native(error))
            )

    def _remember_secrets(self, dependency, data):
        """Masks the values of secret keys among data in everything the module returns."""
        if isinstance(dependency, renderer_dependencies.KeyDependency):
            pairs = [(dependency.path, data)]
        elif isinstance(dependency, renderer_dependencies.PrefixDependency):
            pairs = [(entry[0], entry[1]) for entry in data or ()]
        else:
            pairs = []
        for key, value in pairs:
            if any(fnmatch.fnmatchcase(key, pattern) for pattern in self.module.params["secret_keys"]):
                if key not in self.secret_keys:
                    self.secret_keys.append(key)
                if value:
                    self.module.no_log_values.add(value)

    def _diff(self, live, contents):
        diff = {"before_header": self.dest, "after_header": self.dest}
        if not self.secret_keys:
            before = "" if live.contents is None else live.contents.decode("utf-8", "replace")
            return dict(diff, before=before, after=contents.decode("utf-8", "replace"))
        note = "# text hidden: the template reads secret keys ({}); sha1 {}\n"
        keys = ", ".join(sorted(self.secret_keys))
        before = "" if live.contents is None else note.format(keys, hashlib.sha1(live.contents).hexdigest())
        return dict(diff, before=before, after=note.format(keys, hashlib.sha1(contents).hexdigest()))

    def run(self):
        module = self.module
        execution = renderer_runner.complete(self.template, Brain(), self.client, on_data=self._remember_secrets)
        dependencies = [str(dependency) for dependency in execution.used]
        if execution.unfetched:
            module.fail_json(
                msg=f"the template kept finding new Consul reads; gave up after {renderer_runner.FETCH_ROUNDS} rounds",
                dependencies=dependencies,
            )
        if execution.missing:
            module.fail_json(
                msg="missing key(s) in Consul: {}".format(", ".join(execution.missing)), dependencies=dependencies
            )
        if execution.error:
            module.fail_json(msg=f"the template failed: {execution.error}", dependencies=dependencies)
        contents = execution.contents
        live = renderer_files.read_live(self.dest)
        changed = renderer_files.would_render(contents, live)
        result = {"dest": self.dest, "dependencies": dependencies, "checksum": hashlib.sha1(contents).hexdigest()}
        if module._diff:
            result["diff"] = self._diff(live, contents)
        if changed and not module.check_mode:
            self._swap(contents, live)
        file_args = {
            "path": self.dest,
            "owner": module.params["owner"],
            "group": module.params["group"],
            "mode": module.params["mode"],
            "secontext": [None, None, None],
            "attributes": None,
        }
        if module.check_mode and live.contents is None:
            return dict(result, changed=True)
        changed = module.set_fs_attributes_if_different(file_args, changed)
        return dict(result, changed=changed)

    def _mode(self, live):
        """The candidate's mode as a number: mode itself, or a symbolic mode applied to the live (or 0644) mode."""
        mode = self.module.params["mode"]
        if mode is None or isinstance(mode, int):
            return mode
        if re.match(OCTAL_MODE + r"\Z", mode):
            return int(mode, 8)
        base = os.stat_result((stat.S_IFREG | (0o644 if live.mode is None else live.mode),) + (0,) * 9)
        return self.module._symbolic_mode_to_octal(base, mode)

    def _swap(self, contents, live):
        module = self.module
        validate = module.params["validate"]
        try:
            swapped = renderer_files.swap(
                self.dest,
                contents,
                check=shlex.split(validate) if validate else None,
                mode=self._mode(live),
                user=module.params["owner"],
                group=module.params["group"],
                live=live,
            )
        except renderer_files.CommitError as error:
            module.fail_json(msg=f"cannot replace {self.dest}: {to_native(error)}")
        except (OSError, KeyError) as error:
            module.fail_json(msg=f"cannot write a candidate beside {self.dest}: {to_native(error)}")
        if swapped.status == "check failed":
            checked = swapped.checked
            module.fail_json(
                msg=f"validation failed, {self.dest} left as it was", rc=checked.returncode, stdout=checked.output
            )


def main():
    argument_spec = dict(
        src=dict(type="path"),
        content=dict(type="str"),
        dest=dict(type="path", required=True),
        owner=dict(type="str"),
        group=dict(type="str"),
        mode=dict(type="raw"),
        validate=dict(type="str"),
        secret_keys=dict(type="list", elements="str", default=[], no_log=False),
        consul_scheme=dict(
            type="str",
            choices=["http", "https"],
            removed_in_version=DEPRECATED_IN["version"],
            removed_from_collection=DEPRECATED_IN["collection_name"],
        ),
    )
    argument_spec.update(CONNECTION_ARGUMENT_SPEC)
    argument_spec["address"] = dict(
        CONNECTION_ARGUMENT_SPEC["address"],
        aliases=["consul_address"],
        deprecated_aliases=[dict(name="consul_address", **DEPRECATED_IN)],
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("src", "content")],
        required_one_of=[("src", "content")],
        required_together=CONNECTION_REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    if ENGINE_IMPORT_ERROR:
        module.fail_json(msg="the renderer engine could not be imported", exception=ENGINE_IMPORT_ERROR)
    if renderer_template.JINJA2_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("jinja2 (Debian package python3-jinja2)"))
    if module.params["validate"] and not names_candidate(module.params["validate"]):
        module.fail_json(msg="validate must contain %s, the candidate file's path")
    try:
        module.exit_json(**OneShotRender(module).run())
    except renderer_template.TemplateError as error:
        module.fail_json(msg=to_native(error))
    except (ConfigError, ConsulError) as error:
        module.fail_json(msg=to_native(error))


if __name__ == "__main__":
    main()
