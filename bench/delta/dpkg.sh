#!/bin/sh
# dpkg.sh ROOT: installs the packages in ROOT/tmp/twinroot-debs with dpkg
# inside ROOT, then makes the root as lean as base.sh (image/examples/debian)
# made the base: no documentation, man pages, locales, logs or backups.
# Run by the delta bench as root in a private mount namespace (unshare -m),
# so the proc mount goes away with it.
set -eu
root=$(cd "$1" && pwd)
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1735689600}
export SOURCE_DATE_EPOCH
mount -t proc proc "$root/proc"
trap 'umount "$root/proc" 2>/dev/null || true' EXIT
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
	SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" DEBIAN_FRONTEND=noninteractive \
	sh -c 'dpkg --force-confold -i /tmp/twinroot-debs/*.deb'
umount "$root/proc"
trap - EXIT
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
	"$root"/usr/share/locale/* "$root"/usr/share/lintian "$root"/usr/share/linda \
	"$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
	"$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old "$root"/var/cache/ldconfig/aux-cache \
	"$root"/var/log/* "$root"/tmp/* "$root"/var/tmp/*
mkdir -p "$root/var/log/journal"
