#!/usr/bin/env bash
# Builds the app module's test image on a lab host from its static busybox:
# this directory's start script as the entrypoint, its www/ as the document
# root (CGI scripts under www/cgi-bin). Does nothing when the image exists.
#
# Usage: build.sh IMAGE
set -euo pipefail

image="$1" here="$(cd "$(dirname "$0")" && pwd)"
if docker image inspect "$image" >/dev/null 2>&1; then
    exit 0
fi
rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs/bin" "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/"
for applet in sh cat date dd echo hostname httpd kill printf sleep test tr touch wget '['; do
    ln -s busybox "$rootfs/bin/$applet"
done
cp "$here/start" "$rootfs/start"
cp -r "$here/www" "$rootfs/www"
chmod 0755 "$rootfs/start" "$rootfs"/www/cgi-bin/*
chmod 1777 "$rootfs/tmp"
tar -C "$rootfs" -c . | docker import -c 'ENTRYPOINT ["/start"]' - "$image" >/dev/null
