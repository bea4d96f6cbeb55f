#!/usr/bin/env bash
# Installs ZooKeeper 3.8 (Debian bookworm's `zookeeper` package) and a Java
# runtime for loopback tests; tests/support/zookeeper.py runs the package's jars
# as a process of its own. The package ships jars and scripts, no service:
# Debian's unit lives in `zookeeperd`, which is never installed here; and on a
# machine without a policy-rc.d, one that refuses every service start is in
# place while apt runs. So no system ZooKeeper comes up. apt's chatter is shown
# only when the install fails. Idempotent: nothing runs once it is installed.
set -euo pipefail

installed() {
    dpkg-query -W -f='${Status}' zookeeper 2>/dev/null | grep -q 'ok installed' && command -v java >/dev/null
}

if installed; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-zookeeper.sh: root is needed to apt-get install zookeeper default-jre-headless" >&2
    exit 1
fi
log="$(mktemp)"
cleanup=(rm -f "$log")
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    cleanup+=("$policy")
fi
trap '"${cleanup[@]}"' EXIT
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
# Another apt run (CI sets machines up in parallel) may hold the lock for a while.
apt_opts=(-q -o DPkg::Lock::Timeout=300)
if ! { apt-get "${apt_opts[@]}" update \
    && apt-get "${apt_opts[@]}" -y install --no-install-recommends zookeeper default-jre-headless; } >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
fi
dpkg-query -W -f='zookeeper ${Version}\n' zookeeper
