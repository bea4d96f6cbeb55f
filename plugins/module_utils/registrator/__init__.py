# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dockyard's registrator: the presence service that keeps Consul KV in step with a node's app containers.

One file per job: config, consul (a small HTTP client), docker_source (the
running containers and their events), instances (pure: a container's
attributes to an instance, desired vs owned to puts and deletes), drain (drain
on stop: the labels' grammar, the due-list, the file that keeps it across
restarts), readiness (readiness before traffic: the HTTP check label's
grammar, the probe, the containers waiting for it), registrator (the loop:
session keeper, events, resync, back-off, drains, probes), logs, cli. With
app_config set, the daemon also runs the app configuration agent
(..appconfig.agent), which renders apps' config files from Consul for their
containers. No Ansible imports: the daemon and the tests share this code.
"""
