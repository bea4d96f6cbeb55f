# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local Docker engine as the registrator sees it: running app containers and their events.

Only Docker SDK calls that both Debian's python3-docker (5.0.3) and current
releases (7.x) have: DockerClient(base_url=, version="auto"), the low-level
containers(), inspect_container(), kill(signal=) and events(decode=True, filters=).
"""

from __future__ import annotations

import contextlib

try:
    import docker
    import docker.errors

    DOCKER_IMPORT_ERROR = None
except ImportError as _error:  # pragma: no cover - targets install python3-docker
    docker = None
    DOCKER_IMPORT_ERROR = _error

from .instances import APP_LABEL

# The actions the registrator acts on; the engine matches health_status against "health_status: <status>".
EVENTS = ("start", "kill", "stop", "die", "health_status")


class DockerError(Exception):
    """The engine could not be asked."""


class DockerSource:
    def __init__(self, url: str, timeout: float = 30):
        self.url = url
        self.timeout = timeout
        self._client = None

    @property
    def client(self):
        if self._client is None:
            if docker is None:
                raise DockerError(
                    f"the registrator needs the Docker SDK (Debian package python3-docker): {DOCKER_IMPORT_ERROR}"
                )
            try:
                self._client = docker.DockerClient(base_url=self.url, version="auto", timeout=self.timeout)
            except docker.errors.DockerException as error:
                raise DockerError(f"docker engine at {self.url} unreachable: {error}") from None
        return self._client

    def reset(self) -> None:
        """Drops the connection, so the next call connects again (after the engine restarted)."""
        client, self._client = self._client, None
        if client is not None:
            # Closing a broken connection may fail in many ways; it is dropped anyway.
            with contextlib.suppress(Exception):
                client.close()

    def inspect(self, container_id: str) -> dict | None:
        """The container's attributes, or None when it is gone."""
        try:
            return self.client.api.inspect_container(container_id)
        except docker.errors.NotFound:
            return None
        except (docker.errors.DockerException, OSError) as error:
            self.reset()
            raise DockerError(f"docker engine at {self.url}: inspect {container_id[:12]} failed: {error}") from None

    def kill(self, container_id: str, signal: str) -> bool:
        """Sends the container a signal; False when it is gone or no longer running."""
        try:
            self.client.api.kill(container_id, signal=signal)
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as error:
            if error.status_code == 409:  # the engine's answer for a container that is not running
                return False
            raise DockerError(f"docker engine at {self.url}: kill {container_id[:12]} failed: {error}") from None
        except (docker.errors.DockerException, OSError) as error:
            self.reset()
            raise DockerError(f"docker engine at {self.url}: kill {container_id[:12]} failed: {error}") from None
        return True

    def running(self) -> list:
        """The attributes of every running container labelled as an app task."""
        try:
            listed = self.client.api.containers(filters={"label": APP_LABEL, "status": "running"})
        except (docker.errors.DockerException, OSError) as error:
            self.reset()
            raise DockerError(f"docker engine at {self.url}: listing containers failed: {error}") from None
        found = []
        for summary in listed:
            attrs = self.inspect(summary["Id"])
            if attrs is not None:  # removed between the list and the inspect
                found.append(attrs)
        return found

    def events(self):
        """A stream of the app containers' events (decoded dicts); close() it to stop. Raises DockerError."""
        try:
            return self.client.api.events(
                decode=True, filters={"type": "container", "event": list(EVENTS), "label": [APP_LABEL]}
            )
        except (docker.errors.DockerException, OSError) as error:
            self.reset()
            raise DockerError(f"docker engine at {self.url}: cannot follow events: {error}") from None
