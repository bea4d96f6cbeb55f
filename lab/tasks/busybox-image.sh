#!/usr/bin/env bash
# Builds a test app image on this host from its static busybox (Debian
# busybox-static), as no public registry is reachable: busybox with the applets
# the test apps use, a /www directory (its index.html holding INDEX, when
# given) and CMD. Does nothing when the image exists. Prints "built IMAGE" or
# "exists IMAGE". Used by lab/tasks/busybox-image.yml and, in the Molecule
# verifiers, by molecule/shared/busybox_image.py.
#
# Usage: busybox-image.sh IMAGE CMD-AS-JSON-ARRAY [INDEX]
set -euo pipefail

image="$1" cmd="$2" index="${3-}"
if docker image inspect "$image" >/dev/null 2>&1; then
    echo "exists $image"
    exit 0
fi
rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs/bin" "$rootfs/www"
cp /bin/busybox "$rootfs/bin/"
for applet in sh echo sleep hostname httpd; do ln -s busybox "$rootfs/bin/$applet"; done
if [ -n "$index" ]; then
    printf '%s\n' "$index" >"$rootfs/www/index.html"
fi
tar -C "$rootfs" -c . | docker import -c "CMD $cmd" - "$image" >/dev/null
echo "built $image"
