# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The brain: the last data received for each dependency, shared by watchers and templates."""

from __future__ import annotations

import threading

_ABSENT = object()


class Brain:
    def __init__(self):
        self._data = {}
        self._lock = threading.Lock()

    def remember(self, dependency, data) -> bool:
        """Stores data; returns True when it differs from what was known (or nothing was)."""
        with self._lock:
            before = self._data.get(dependency, _ABSENT)
            self._data[dependency] = data
            return before is _ABSENT or before != data

    def recall(self, dependency):
        """Returns (True, data) once the dependency has been fetched, else (False, None)."""
        with self._lock:
            data = self._data.get(dependency, _ABSENT)
        return (False, None) if data is _ABSENT else (True, data)

    def forget(self, dependency) -> None:
        with self._lock:
            self._data.pop(dependency, None)

    def __contains__(self, dependency) -> bool:
        with self._lock:
            return dependency in self._data
