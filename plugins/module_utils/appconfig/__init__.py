# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""App configuration rendered from Consul into every container of an app: the layout shared by the app
module and the node agents (layout), and the agent each node's registrator runs (agent)."""
