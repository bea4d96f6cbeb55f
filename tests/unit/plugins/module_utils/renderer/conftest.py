"""Makes the collection importable as ansible_collections.dockyard.platform."""

import sys
from pathlib import Path

COLLECTIONS = Path(__file__).parents[5] / ".cache" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
