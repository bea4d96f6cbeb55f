#!/usr/bin/env bash
# Builds the lab base image (Debian bookworm, systemd as PID 1) with debootstrap,
# because no image can be pulled from a public registry here. The image is
# tagged with a hash of this directory, so it is rebuilt only when the recipe
# changes. With --print-image it only prints that reference (for the lab tasks).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repository="${LAB_BASE_IMAGE_REPOSITORY:-dockyard-lab-base}"
mirror="${LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
recipe_hash="$(cat "$here"/* | sha256sum | cut -c1-12)"
image="$repository:$recipe_hash"

if [ "${1:-}" = "--print-image" ]; then
    echo "$image"
    exit 0
fi

if docker image inspect "$image" >/dev/null 2>&1; then
    echo "lab base image $image is up to date"
    exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

rootfs="$(mktemp -d /var/tmp/dockyard-rootfs.XXXXXX)"
trap 'rm -rf --one-file-system "$rootfs"' EXIT

echo "building lab base image $image (debootstrap, a few minutes)"
debootstrap --variant=minbase \
    --include="$(grep -v '^#' "$here/packages" | paste -sd, -)" \
    bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    tail -20 "$rootfs.log" >&2
    exit 1
}
rm -f "$rootfs.log"

install -m 0755 "$here/configure-rootfs.sh" "$rootfs/tmp/configure-rootfs.sh"
chroot "$rootfs" /tmp/configure-rootfs.sh "$mirror"
rm -f "$rootfs/tmp/configure-rootfs.sh"

tar -C "$rootfs" --numeric-owner -c . | docker import \
    --change 'ENV container=docker' \
    --change 'CMD ["/sbin/init"]' \
    --change "LABEL org.dockyard.recipe=$recipe_hash" \
    - "$image" >/dev/null
echo "built lab base image $image"
