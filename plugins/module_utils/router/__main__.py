# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""python3 -m dockyard.router: the same as python3 -m dockyard.router.cli."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
