# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registrator's state files under its state directory (pending drains, a handed-over session)."""

from __future__ import annotations

import json
import os
import tempfile


def write_json(path: str, document) -> None:
    """Replaces path with document as JSON, atomically (a crash leaves the old file or the new one); raises OSError.

    The directory is made readable by root only: the files name Consul sessions and containers.
    """
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(document, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
