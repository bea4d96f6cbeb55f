# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dockyard's router reporter: every router publishes into Consul what its HAProxy serves, live.

One file per job: haproxy (the master CLI: `show proc` and the current
worker's `show servers state`, parsed strictly), report (the document at
<prefix>routers/<node>: written, read and validated by one grammar; the
readers' helpers read_routers and servers_up), schedule (pure: when a report
is due: changed, rate limited, heartbeat, back-off), reporter (the loop),
config, cli. No Ansible imports: the daemon, the app module and the tests
share this code.
"""
