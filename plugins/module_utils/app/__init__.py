# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The app module's logic, in plain Python: no Ansible imports, so the module and the tests share it.

spec (the app's options parsed into one frozen value: its version id, its
difference from another spec), marathon (a Marathon app definition translated
to those options), and the deployer's parts beside them.
"""
