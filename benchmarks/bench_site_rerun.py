"""Benchmark: playbooks/site.yml on a new lab environment, then again on the unchanged one.

Builds a throwaway lab of the staging shape (lab/environments/staging: one scheduler master, three agents,
coordination on the agents only) under its own lab name and secrets root, times the cold run and the rerun side by
side, checks that the rerun changed nothing, records both in .cache/bench/site_rerun.json, removes the lab and exits
non-zero when the rerun takes more than --max-ratio of the cold run.

    python benchmarks/bench_site_rerun.py [--max-ratio 0.25] [--keep]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHAPE = ROOT / "lab" / "environments" / "staging"
LAB_NAME = "bench-site"
RECAP = re.compile(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def inventory(workdir: Path) -> Path:
    """The staging lab's inventory, renamed: its own containers, environment and secrets root."""
    directory = workdir / "inventory"
    shutil.copytree(SHAPE, directory)
    hosts = yaml.safe_load((SHAPE / "hosts.yml").read_text())
    for name, host in hosts["all"]["children"]["lab"]["hosts"].items():
        host["ansible_host"] = f"dockyard-{LAB_NAME}-{name}"
    (directory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    overrides = {
        "lab_name": LAB_NAME,
        "dockyard_environment": LAB_NAME,
        "dockyard_secrets_root": str(workdir / "secrets"),
    }
    all_vars = directory / "group_vars" / "all.yml"
    settings = yaml.safe_load(all_vars.read_text()) or {}
    all_vars.write_text(yaml.safe_dump({**settings, **overrides}))
    return directory


def playbook(workdir: Path, name: str, inventory_dir: Path, path: str) -> tuple[float, str]:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".cache" / "collections"),
        "ANSIBLE_NOCOLOR": "1",
    }
    log = workdir / f"{name}.log"
    started = time.monotonic()
    with log.open("w") as output:
        finished = subprocess.run(
            ["ansible-playbook", "-i", str(inventory_dir), str(ROOT / path)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,
            cwd=ROOT,
        )
    elapsed = time.monotonic() - started
    text = log.read_text()
    if finished.returncode != 0:
        raise RuntimeError(f"{name}: ansible-playbook {path} failed (exit {finished.returncode}):\n{text[-3000:]}")
    return elapsed, text


def changed_hosts(recap_text: str) -> dict:
    return {host: int(changed) for host, changed, _unreachable, _failed in RECAP.findall(recap_text) if int(changed)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-ratio", type=float, default=0.25)
    parser.add_argument("--keep", action="store_true", help="leave the lab and its secrets for inspection")
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-site-rerun-"))
    lab = inventory(workdir)
    try:
        playbook(workdir, "up", lab, "lab/up.yml")
        cold, _log = playbook(workdir, "cold", lab, "playbooks/site.yml")
        rerun, rerun_log = playbook(workdir, "rerun", lab, "playbooks/site.yml")
    finally:
        if not options.keep:
            playbook(workdir, "down", lab, "lab/down.yml")
            shutil.rmtree(workdir)
    changed = changed_hosts(rerun_log)
    ratio = rerun / cold
    record = {
        "shape": "1 scheduler master + 3 agents, coordination on the agents (lab/environments/staging)",
        "cold_seconds": round(cold, 1),
        "rerun_seconds": round(rerun, 1),
        "ratio": round(ratio, 3),
        "max_ratio": options.max_ratio,
        "rerun_changed": changed,
    }
    print(f"site.yml on a new lab:        {cold:8.1f} s")
    print(f"site.yml again, unchanged:    {rerun:8.1f} s  (changed: {changed or 'none'})")
    print(f"ratio: {ratio:.2f} (must be at most {options.max_ratio:g})")
    results = ROOT / ".cache" / "bench"
    results.mkdir(parents=True, exist_ok=True)
    (results / "site_rerun.json").write_text(json.dumps(record, indent=2) + "\n")
    if changed:
        print(f"FAIL: the rerun changed something: {changed}", file=sys.stderr)
        return 1
    if ratio > options.max_ratio:
        print(f"FAIL: the rerun takes {ratio:.0%} of the cold run", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
