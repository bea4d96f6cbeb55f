# Copyright: Contributors to the Dockyard project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local status endpoint: health for a Consul HTTP check, status as JSON, Prometheus metrics.

GET /v1/health   200 healthy, 429 (a Consul check's "warning") while Consul
                 queries fail or a template waits for data, 503 when a
                 template is in error or the loop is stuck.
GET /v1/status   the runner's snapshot as JSON.
GET /metrics     Prometheus text exposition.
POST /v1/accept-drop/<template>   403: the max_drop override is taken on the control socket (control.py).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn

STUCK_AFTER = 30.0  # seconds without a loop cycle (the loop cycles at least every second)


def stuck(snapshot: dict) -> str | None:
    """Why the loop counts as stuck, or None: no heartbeat for STUCK_AFTER past what it said it may be busy for.

    A render runs its check and command with their timeout, and may run
    several: the loop says so (busy.allowance) before it starts, so a slow
    reload is not mistaken for a hang.
    """
    age = snapshot["heartbeat_age"]
    busy = snapshot.get("busy") or {}
    if age <= STUCK_AFTER + (busy.get("allowance") or 0):
        return None
    doing = f" ({busy['with']})" if busy.get("with") else ""
    return f"render loop stuck for {age:.0f}s{doing}"


def health(snapshot: dict) -> tuple:
    """(HTTP status, reason) for a snapshot."""
    reason = stuck(snapshot)
    if reason:
        return 503, reason
    failing = [t["name"] for t in snapshot["templates"] if t["last_error"]]
    if failing:
        return 503, "templates in error: " + ", ".join(failing)
    if snapshot["consul"]["consecutive_failures"]:
        return 429, f"consul queries failing ({snapshot['consul']['consecutive_failures']} in a row)"
    waiting = [t["name"] for t in snapshot["templates"] if t["waiting_for"]]
    if waiting:
        return 429, "templates waiting for data: " + ", ".join(waiting)
    return 200, "ok"


def _label(value) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics(snapshot: dict) -> str:
    lines = []

    def family(name, kind, help_text, samples):
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            label_text = ",".join(f'{key}="{_label(val)}"' for key, val in labels.items())
            lines.append("{}{} {}".format(name, f"{{{label_text}}}" if label_text else "", value))

    templates = snapshot["templates"]

    def per_template(field_name):
        return [({"template": t["name"]}, t[field_name] or 0) for t in templates]

    code = health(snapshot)[0]
    family("dockyard_renderer_up", "gauge", "1 when the renderer is healthy.", [({}, 1 if code == 200 else 0)])
    family(
        "dockyard_renderer_renders_total", "counter", "Renders that replaced a live file.", per_template("render_count")
    )
    family("dockyard_renderer_errors_total", "counter", "Template, write and Consul errors.", per_template("errors"))
    family(
        "dockyard_renderer_check_failures_total",
        "counter",
        "Candidates refused by the check command.",
        per_template("check_failures"),
    )
    family(
        "dockyard_renderer_command_failures_total",
        "counter",
        "Commands that failed (file rolled back).",
        per_template("command_failures"),
    )
    family("dockyard_renderer_refusals_total", "counter", "Renders refused by max_drop.", per_template("refusals"))
    family(
        "dockyard_renderer_last_render_timestamp_seconds",
        "gauge",
        "When the live file was last replaced.",
        per_template("last_render"),
    )
    family(
        "dockyard_renderer_dependencies",
        "gauge",
        "Consul dependencies the template read.",
        per_template("dependencies"),
    )
    family(
        "dockyard_renderer_template_error",
        "gauge",
        "1 while the template is in error.",
        [({"template": t["name"]}, 1 if t["last_error"] else 0) for t in templates],
    )
    family(
        "dockyard_renderer_skipped_data",
        "gauge",
        "Entries the last render skipped as invalid (warn(), routing_table()).",
        [({"template": t["name"]}, len(t.get("skipped") or ())) for t in templates],
    )
    consul = snapshot["consul"]
    family("dockyard_renderer_consul_requests_total", "counter", "Queries sent to Consul.", [({}, consul["requests"])])
    family(
        "dockyard_renderer_consul_errors_total", "counter", "Queries to Consul that failed.", [({}, consul["errors"])]
    )
    family(
        "dockyard_renderer_consul_consecutive_failures",
        "gauge",
        "Failed queries in a row (worst watch).",
        [({}, consul["consecutive_failures"])],
    )
    family("dockyard_renderer_watches", "gauge", "Dependencies being watched.", [({}, consul["watches"])])
    return "\n".join(lines) + "\n"


class _Server(ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class StatusServer:
    def __init__(self, runner, address: str, port: int):
        runner_ref = runner

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # the renderer's own log is enough
                pass

            def _send(self, code, body, content_type="application/json"):
                payload = body.encode("utf-8")
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                snapshot = runner_ref.snapshot()
                if self.path.startswith("/v1/health"):
                    code, reason = health(snapshot)
                    self._send(code, json.dumps({"status": reason, "templates": snapshot["templates"]}) + "\n")
                elif self.path.startswith("/v1/status"):
                    self._send(200, json.dumps(snapshot, indent=2) + "\n")
                elif self.path.startswith("/metrics"):
                    self._send(200, metrics(snapshot), "text/plain; version=0.0.4")
                else:
                    self._send(404, '{"error": "not found"}\n')

            def do_POST(self):
                # Anything on the host reaches this port: overrides are taken on the root-only control socket.
                if self.path.startswith("/v1/accept-drop/"):
                    refusal = {"error": "accept-drop is taken only on the control socket, <state_dir>/control.sock"}
                    self._send(403, json.dumps(refusal) + "\n")
                else:
                    self._send(404, '{"error": "not found"}\n')

        self.server = _Server((address, port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="status", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
