#!/usr/bin/env bash
# Makes sure a Docker engine answers on this machine. On a Debian/Ubuntu machine
# where we are root it installs docker.io and starts dockerd; anywhere else it
# says in one sentence what is missing.
set -euo pipefail

if docker info >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "No Docker engine answers and this is not root: start a Docker engine you can reach (docker info) or run make as root on Debian/Ubuntu so it can install docker.io." >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "No Docker engine answers and this machine has no apt-get: install and start a Docker engine, then run make again." >&2
    exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
    echo "installing docker.io"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

if [ -d /run/systemd/system ]; then
    systemctl start docker
else
    # No systemd here (a CI sandbox): run the daemon in the background.
    mkdir -p /var/log/dockyard
    # In a session of its own: the engine outlives the make (or shell) that started it.
    setsid --fork dockerd >/var/log/dockyard/dockerd.log 2>&1 </dev/null
fi

for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        echo "Docker engine is up"
        exit 0
    fi
    sleep 1
done
echo "dockerd was started but did not answer within 60 s; see /var/log/dockyard/dockerd.log or journalctl -u docker." >&2
exit 1
