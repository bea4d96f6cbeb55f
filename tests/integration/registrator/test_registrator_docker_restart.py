"""Must show: when the Docker engine goes away and comes back (the registrator talks to it through a proxy the test
cuts), the registrator reconnects its event stream and resyncs what changed while it was blind."""

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from registrator_helpers import app_labels, task_of, wait_for


def engine_socket() -> Path:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.skip(f"DOCKER_HOST {host} is not a unix socket")
    return Path(host[len("unix://") :])


class EngineProxy:
    """tcp://127.0.0.1:<port> -> the engine's unix socket; down() cuts every connection and refuses new ones."""

    def __init__(self, target: Path):
        self.target = str(target)
        self.port = None
        self.listener = None
        self.connections = []
        self.lock = threading.Lock()

    def up(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port or 0))
        self.port = self.listener.getsockname()[1]
        self.listener.listen(16)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()
        return self

    def down(self):
        # shutdown() first: close() alone leaves a socket that a thread blocks in accept() on still listening.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            for sock in self.connections:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.connections.clear()

    def _accept(self, listener):
        while True:
            try:
                client, _address = listener.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(self.target)
            with self.lock:
                self.connections += [client, engine]
            for source, sink in ((client, engine), (engine, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def test_engine_restart_reconnects_and_resyncs(consul_agent, registrator, containers):
    proxy = EngineProxy(engine_socket()).up()
    try:
        daemon, kv = registrator(consul_agent, docker_url=f"tcp://127.0.0.1:{proxy.port}")
        wait_for(kv.session, 10, what="the registrator's session")
        gone = containers(labels=app_labels("web"))
        wait_for(lambda: kv.entry(kv.key("web", task_of(gone))), 2, what="registration through the proxy")

        proxy.down()
        gone.kill()  # the registrator cannot see this event
        started = containers(labels=app_labels("web"))
        time.sleep(1.5)
        assert kv.entry(kv.key("web", task_of(gone))) is not None, "blind: nothing changes while the engine is away"
        assert daemon.alive()

        proxy.up()
        expected = [kv.key("web", task_of(started))]
        wait_for(lambda: kv.keys() == expected, 8, 0.05, what="a resync once the engine answers again")
        assert "docker event stream" in daemon.log()
    finally:
        proxy.down()
