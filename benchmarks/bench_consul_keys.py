"""Benchmark: seed 1,000 keys with dockyard.platform.consul_keys vs a loop of community.general.consul_kv.

Starts its own Consul agent on loopback (tests/support/consul_agent.py), writes the same 1,000 keys into an empty
prefix once with each approach through ansible-playbook, checks that Consul holds exactly the expected keys after
each, prints both wall times and their ratio, records them in .cache/bench/consul_keys.json and exits non-zero when
consul_keys is less than 20 times faster.

    python benchmarks/bench_consul_keys.py [--keys 1000] [--min-ratio 20]
"""

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
ConsulAgent = importlib.import_module("support.consul_agent").ConsulAgent

PREFIX = "bench/config"

OURS = """
- name: Seed with dockyard.platform.consul_keys
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Seed every key in one task
      dockyard.platform.consul_keys:
        address: "{{ consul_address }}"
        prefix: "{{ prefix }}"
        data: "{{ keys }}"
"""

BASELINE = """
- name: Seed with a loop of community.general.consul_kv
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Seed one key per loop item
      community.general.consul_kv:
        host: "{{ consul_host }}"
        port: "{{ consul_port }}"
        key: "{{ prefix }}/{{ item.key }}"
        value: "{{ item.value }}"
      loop: "{{ keys | dict2items }}"
      loop_control:
        label: "{{ item.key }}"
"""


def run_playbook(workdir: Path, name: str, body: str, variables: dict) -> float:
    playbook = workdir / f"{name}.yml"
    playbook.write_text(body)
    vars_file = workdir / f"{name}-vars.json"
    vars_file.write_text(json.dumps(variables))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".cache" / "collections"),
        "ANSIBLE_NOCOLOR": "1",
    }
    command = [
        "ansible-playbook",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        "-e",
        f"@{vars_file}",
        str(playbook),
    ]
    log = workdir / f"{name}.log"
    started = time.monotonic()
    with log.open("w") as output:
        finished = subprocess.run(command, env=env, stdout=output, stderr=subprocess.STDOUT, check=False)
    elapsed = time.monotonic() - started
    if finished.returncode != 0:
        sys.exit(f"{name}: ansible-playbook failed (exit {finished.returncode}):\n{log.read_text()[-3000:]}")
    return elapsed


def check_seeded(agent, keys: dict, name: str) -> None:
    found = {key: agent.get(key).decode() for key in agent.keys(PREFIX + "/")}
    expected = {f"{PREFIX}/{key}": value for key, value in keys.items()}
    if found != expected:
        sys.exit(f"{name}: Consul holds {len(found)} keys under {PREFIX}/, expected {len(expected)} with their values")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--min-ratio", type=float, default=20.0)
    options = parser.parse_args()
    keys = {f"app{i % 10}/setting{i:04d}": f"value-{i}" for i in range(options.keys)}

    with tempfile.TemporaryDirectory(prefix="bench-consul-keys-") as scratch:
        workdir = Path(scratch)
        (workdir / "consul").mkdir()
        agent = ConsulAgent(workdir / "consul")
        agent.start()
        try:
            host, port = agent.address.split(":")
            common = {"prefix": PREFIX, "keys": keys}

            agent.delete_tree(PREFIX + "/")
            ours = run_playbook(workdir, "consul_keys", OURS, {**common, "consul_address": agent.address})
            check_seeded(agent, keys, "consul_keys")

            agent.delete_tree(PREFIX + "/")
            baseline = run_playbook(
                workdir, "consul_kv_loop", BASELINE, {**common, "consul_host": host, "consul_port": int(port)}
            )
            check_seeded(agent, keys, "consul_kv loop")
        finally:
            agent.stop()

    ratio = baseline / ours
    record = {
        "keys": options.keys,
        "consul_keys_seconds": round(ours, 2),
        "consul_kv_loop_seconds": round(baseline, 2),
        "ratio": round(ratio, 1),
        "min_ratio": options.min_ratio,
    }
    print(f"consul_keys: {options.keys} keys, one task:            {ours:8.2f} s")
    print(f"community.general.consul_kv, a loop of {options.keys} tasks: {baseline:8.2f} s")
    print(f"ratio: {ratio:.1f}x (must be at least {options.min_ratio:g}x)")
    results = ROOT / ".cache" / "bench"
    results.mkdir(parents=True, exist_ok=True)
    (results / "consul_keys.json").write_text(json.dumps(record, indent=2) + "\n")
    if ratio < options.min_ratio:
        print(f"FAIL: consul_keys is only {ratio:.1f} times faster", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
