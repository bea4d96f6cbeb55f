#!/bin/sh
# Runs inside the debootstrapped tree: makes systemd boot cleanly in a container.
set -eu
mirror="$1"

cat >/etc/apt/sources.list <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF

# Units that need hardware, a console or a writable kernel interface never
# start in a container; masking them keeps `systemctl is-system-running` clean.
for unit in \
    getty.target console-getty.service systemd-udevd.service \
    systemd-udev-trigger.service systemd-modules-load.service \
    systemd-remount-fs.service sys-kernel-debug.mount \
    sys-kernel-tracing.mount dev-hugepages.mount \
    systemd-firstboot.service systemd-sysusers.service \
    systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer \
    e2scrub_all.timer fstrim.timer; do
    ln -sf /dev/null "/etc/systemd/system/$unit"
done

echo 'dockyard-lab' >/etc/hostname
: >/etc/machine-id
# Package lists stay in the image: a new host has them, as an installed one does.
apt-get update -qq
apt-get clean
