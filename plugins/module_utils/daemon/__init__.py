# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What Dockyard's daemons (renderer, registrator) share: logfmt logging, configuration values, the Consul client.

No Ansible imports. The roles install it next to the engines, under one parent
package, so the engines' relative imports work on hosts as in the collection.
"""
