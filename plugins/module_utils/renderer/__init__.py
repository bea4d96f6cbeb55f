# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dockyard's renderer: consul-template semantics in plain Python and Jinja2.

One file per job, after consul-template's boundaries: config, consul (HTTP
client), dependencies, watch, brain, template, render, commands, runner,
child (exec mode), status, logs, cli. No Ansible imports: the module
dockyard.platform.render, the daemon and the tests share this code.

The template engine knows no routing: importing the package registers the
routing table's template function (routes.py) and the catalog's (catalog.py),
whichever module is imported.
"""

from . import catalog, routes  # noqa: F401  (register service(), services(), nodes(), routing_table())
