"""The test app images of the Molecule verifiers, built by the same script as
the playbooks' (lab/tasks/busybox-image.sh): run the command this returns on a
lab host."""

import json
import shlex
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "lab" / "tasks" / "busybox-image.sh"


def busybox_image(image: str, cmd: list[str], index: str | None = None) -> str:
    """A shell command that builds image (CMD cmd, /www/index.html holding index) unless it exists."""
    arguments = [image, json.dumps(cmd)] + ([index] if index is not None else [])
    return shlex.join(["bash", "-c", SCRIPT.read_text(), SCRIPT.name, *arguments])
