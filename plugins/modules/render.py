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
  - The task fails, and leaves the destination as it was, when Consul cannot be reached, a key read with C(key) does
    not exist, the template raises (for example an undefined variable), or O(validate) rejects the candidate.
  - Consul settings not given fall back to the standard environment variables on the host (E(CONSUL_HTTP_ADDR),
    E(CONSUL_HTTP_TOKEN), E(CONSUL_HTTP_SSL), E(CONSUL_CACERT), E(CONSUL_CLIENT_CERT), E(CONSUL_CLIENT_KEY)).
author:
  - Dockyard engineers (@dockyard)
requirements:
  - jinja2 (Debian package python3-jinja2) on the host that runs the module
attributes:
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
      - A command run on the candidate file before it replaces O(dest), with V(%s) standing for the candidate's path,
        for example V(haproxy -c -f %s). A non-zero exit leaves O(dest) as it was and fails the task.
    type: str
  consul_address:
    description: Consul HTTP address as V(host:port) or a URL; E(CONSUL_HTTP_ADDR), then V(127.0.0.1:8500) if unset.
    type: str
  consul_scheme:
    description: Scheme used with O(consul_address) when it is not a URL.
    type: str
    choices: [http, https]
  token:
    description: Consul ACL token; E(CONSUL_HTTP_TOKEN) if unset.
    type: str
  ca_path:
    description: CA bundle that verifies Consul's certificate; E(CONSUL_CACERT) if unset.
    type: path
  client_cert:
    description: Client certificate for Consul; E(CONSUL_CLIENT_CERT) if unset. Requires O(client_key).
    type: path
  client_key:
    description: Key of O(client_cert); E(CONSUL_CLIENT_KEY) if unset.
    type: path
  validate_certs:
    description: Whether to verify Consul's TLS certificate.
    type: bool
    default: true
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
    consul_address: 127.0.0.1:8500
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
"""

# Imports follow the documentation, as ansible-test validate-modules requires.
import fnmatch
import hashlib
import os
import re
import ssl
import stat
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

try:
    from ansible_collections.dockyard.platform.plugins.module_utils.daemon.consul import ConsulClient, ConsulError
    from ansible_collections.dockyard.platform.plugins.module_utils.renderer import config as renderer_config
    from ansible_collections.dockyard.platform.plugins.module_utils.renderer import (
        dependencies as renderer_dependencies,
    )
    from ansible_collections.dockyard.platform.plugins.module_utils.renderer import render as renderer_files
    from ansible_collections.dockyard.platform.plugins.module_utils.renderer import template as renderer_template
    from ansible_collections.dockyard.platform.plugins.module_utils.renderer.brain import Brain

    ENGINE_IMPORT_ERROR = None
except ImportError:
    ENGINE_IMPORT_ERROR = traceback.format_exc()


# The TLS options, the engine's setting each one fills, and the environment variable it falls back to.
TLS_OPTIONS = {
    "ca_path": ("ca_file", "CONSUL_CACERT"),
    "client_cert": ("cert_file", "CONSUL_CLIENT_CERT"),
    "client_key": ("key_file", "CONSUL_CLIENT_KEY"),
}
OCTAL_MODE = "^[0-7]{1,4}$"


class OneShotRender:
    """Render once: fetch what the template reads, compare, validate the candidate, swap."""

    def __init__(self, module):
        self.module = module
        params = module.params
        self.dest = params["dest"]
        self.template = renderer_template.Template("render", self._source())
        self.secret_keys = []  # keys of secret_keys the template read
        consul = {
            "address": params["consul_address"],
            "scheme": params["consul_scheme"],
            "token": params["token"],
            "ca_file": params["ca_path"],
            "cert_file": params["client_cert"],
            "key_file": params["client_key"],
            "verify": params["validate_certs"],
        }
        settings = renderer_config.parse_consul({name: value for name, value in consul.items() if value is not None})
        renderer_config.check_files(settings, self._tls_names())
        try:
            self.client = ConsulClient(settings)
        except (ssl.SSLError, OSError) as error:
            given = [option for option, (setting, _env) in TLS_OPTIONS.items() if getattr(settings, setting)]
            module.fail_json(msg="cannot load the TLS files of {}: {}".format(", ".join(given), to_native(error)))

    def _tls_names(self):
        """The name to report for each TLS setting: the option, and the variable it came from if it did."""
        names = {}
        for option, (setting, variable) in TLS_OPTIONS.items():
            from_environment = self.module.params[option] is None and os.environ.get(variable)
            names[setting] = f"{option} (from {variable})" if from_environment else option
        return names

    def _source(self):
        if self.module.params["content"] is not None:
            return self.module.params["content"]
        try:
            with open(self.module.params["src"], encoding="utf-8") as handle:
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

    def execute(self):
        brain = Brain()
        for _attempt in range(50):
            execution = self.template.execute(brain)
            if not execution.unfetched:
                return execution
            for dependency in execution.unfetched:
                data, _index = dependency.fetch(self.client)
                self._remember_secrets(dependency, data)
                brain.remember(dependency, data)
        self.module.fail_json(msg="the template kept discovering new Consul reads; gave up after 50 rounds")

    def _diff(self, live, contents, output):
        diff = {"before_header": self.dest, "after_header": self.dest}
        if not self.secret_keys:
            before = "" if live.contents is None else live.contents.decode("utf-8", "replace")
            return dict(diff, before=before, after=output)
        note = "# text hidden: the template reads secret keys ({}); sha1 {}\n"
        keys = ", ".join(sorted(self.secret_keys))
        before = "" if live.contents is None else note.format(keys, hashlib.sha1(live.contents).hexdigest())
        return dict(diff, before=before, after=note.format(keys, hashlib.sha1(contents).hexdigest()))

    def run(self):
        module = self.module
        execution = self.execute()
        dependencies = [str(dependency) for dependency in execution.used]
        if execution.missing:
            module.fail_json(
                msg="missing key(s) in Consul: {}".format(", ".join(execution.missing)), dependencies=dependencies
            )
        if execution.error:
            module.fail_json(msg=f"the template failed: {execution.error}", dependencies=dependencies)
        contents = execution.output.encode("utf-8")
        live = renderer_files.read_live(self.dest)
        changed = renderer_files.would_render(contents, live)
        result = {"dest": self.dest, "dependencies": dependencies, "checksum": hashlib.sha1(contents).hexdigest()}
        if module._diff:
            result["diff"] = self._diff(live, contents, execution.output)
        if changed and not module.check_mode:
            self._write(contents, live)
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

    def _write(self, contents, live):
        module = self.module
        mode = self._mode(live)
        try:
            candidate = renderer_files.write_candidate(
                self.dest, contents, mode, module.params["owner"], module.params["group"], live
            )
        except (OSError, KeyError) as error:
            module.fail_json(msg=f"cannot write a candidate beside {self.dest}: {to_native(error)}")
        try:
            if module.params["validate"]:
                rc, out, err = module.run_command(module.params["validate"] % candidate)
                if rc != 0:
                    module.fail_json(
                        msg=f"validation failed, {self.dest} left as it was", rc=rc, stdout=out, stderr=err
                    )
            renderer_files.commit(candidate, self.dest)
        finally:
            renderer_files.discard(candidate)


def _check_mode_option(module):
    """Fails unless mode is a number, an octal string or a symbolic mode (checked on a stand-in file)."""
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


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path"),
            content=dict(type="str"),
            dest=dict(type="path", required=True),
            owner=dict(type="str"),
            group=dict(type="str"),
            mode=dict(type="raw"),
            validate=dict(type="str"),
            consul_address=dict(type="str"),
            consul_scheme=dict(type="str", choices=["http", "https"]),
            token=dict(type="str", no_log=True),
            ca_path=dict(type="path"),
            client_cert=dict(type="path"),
            client_key=dict(type="path", no_log=False),
            validate_certs=dict(type="bool", default=True),
            secret_keys=dict(type="list", elements="str", default=[], no_log=False),
        ),
        mutually_exclusive=[("src", "content")],
        required_one_of=[("src", "content")],
        required_together=[("client_cert", "client_key")],
        supports_check_mode=True,
    )
    if ENGINE_IMPORT_ERROR:
        module.fail_json(msg="the renderer engine could not be imported", exception=ENGINE_IMPORT_ERROR)
    if renderer_template.JINJA2_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("jinja2 (Debian package python3-jinja2)"))
    if module.params["validate"] and "%s" not in module.params["validate"]:
        module.fail_json(msg="validate must contain %s, the candidate file's path")
    _check_mode_option(module)
    try:
        renderer = OneShotRender(module)
        module.exit_json(**renderer.run())
    except renderer_template.TemplateError as error:
        module.fail_json(msg=to_native(error))
    except ConsulError as error:
        module.fail_json(msg=to_native(error))
    except (renderer_config.ConfigError, KeyError) as error:
        module.fail_json(msg=to_native(error))


if __name__ == "__main__":
    main()
