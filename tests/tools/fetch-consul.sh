#!/usr/bin/env bash
# Puts a consul binary for loopback tests into the given directory. It comes
# from Debian bullseye's consul package (the version the consul role installs
# by default), fetched with a private apt state so the machine's own apt
# sources stay untouched.
set -euo pipefail

dest="$1"
if [ -x "$dest/consul" ]; then
    exit 0
fi
mirror="${LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$dest"
echo "deb $mirror bullseye main" >"$work/sources.list"
apt_opts=(
    -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
    -o APT::Sandbox::User=root
)
apt-get -qq "${apt_opts[@]}" update
(cd "$work" && apt-get -qq "${apt_opts[@]}" download consul)
dpkg-deb -x "$work"/consul_*.deb "$work/root"
install -m 0755 "$work/root/usr/bin/consul" "$dest/consul"
# sed reads all of it (head would leave, and SIGPIPE fail the script under pipefail).
"$dest/consul" version | sed -n 1p
