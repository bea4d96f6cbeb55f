#!/usr/bin/env bash
# Puts a runnable haproxy for loopback tests into the given directory. It comes
# from Debian bookworm's haproxy package (the version the haproxy role installs),
# fetched with a private apt state so the machine's own apt sources, package
# database and services stay untouched: the .deb and the shared libraries it
# needs that the machine lacks are extracted under $dest/../haproxy-root, and
# $dest/haproxy is a wrapper that points LD_LIBRARY_PATH there.
set -euo pipefail

dest="$1"
if [ -x "$dest/haproxy" ] && "$dest/haproxy" -v >/dev/null 2>&1; then
    exit 0
fi
mirror="${LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${LAB_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"
root="$(dirname "$dest")/haproxy-root"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
cat >"$work/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
apt_opts=(
    -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
    -o APT::Sandbox::User=root
)
apt-get -qq "${apt_opts[@]}" update

# haproxy and those of its library dependencies (one level and theirs) that the
# machine does not have; adduser/lsb-base only serve the package's scripts.
wanted=(haproxy)
for package in liblua5.3-0 libopentracing-c-wrapper0 libopentracing1 libstdc++6 libpcre2-8-0 libssl3 libcrypt1 \
    libsystemd0 zlib1g; do
    # grep without -q reads to the end: under pipefail an early exit would SIGPIPE dpkg-query.
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -F "install ok installed" >/dev/null; then
        wanted+=("$package")
    fi
done
(cd "$work" && apt-get -qq "${apt_opts[@]}" download "${wanted[@]}")
rm -rf "$root"
mkdir -p "$root"
for deb in "$work"/*.deb; do
    dpkg-deb -x "$deb" "$root"
done
libs="$root/usr/lib/x86_64-linux-gnu:$root/usr/lib/$(uname -m)-linux-gnu:$root/lib/$(uname -m)-linux-gnu"
cat >"$dest/haproxy" <<EOF
#!/bin/sh
# Debian bookworm's haproxy, extracted by tests/tools/fetch-haproxy.sh (not installed).
LD_LIBRARY_PATH="$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$root/usr/sbin/haproxy" "\$@"
EOF
chmod 0755 "$dest/haproxy"
# sed reads all of it (head would leave, and SIGPIPE fail the script under pipefail).
"$dest/haproxy" -v | sed -n 1p
