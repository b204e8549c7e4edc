#!/bin/sh
# base.sh ROOT HOOK: turns a fresh debootstrap of trixie in ROOT into the
# cached base of the Debian reference system (see doc.go). Run by BuildBase
# as root, inside a private mount namespace (unshare -m), so nothing it
# mounts outlives it. HOOK is the initramfs local-bottom script.
set -eu
root=$(cd "$1" && pwd)
hook=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")

# Reproducible where the tools allow it: mkinitramfs clamps the times in
# its archive to this.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1735689600}
export SOURCE_DATE_EPOCH
in_root() {
	chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
		SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" "$@"
}
mount -t proc proc "$root/proc"
trap 'umount "$root/proc" 2>/dev/null || true' EXIT

release=$(ls "$root/usr/lib/modules")
case "$release" in
*[!A-Za-z0-9.+_-]* | "")
	echo "base.sh: want one kernel in $root/usr/lib/modules, found: $release" >&2
	exit 1
	;;
esac
mods="$root/usr/lib/modules/$release/kernel"

# Modules a VM or appliance has no use for. Kept: storage (virtio, nvme,
# ahci, scsi, usb-storage, md/dm), file systems, netfilter/nftables, bridge,
# veth, tun (podman networking), watchdogs, wired Ethernet, virtio and the
# simple/virtio DRM drivers.
cd "$mods"
rm -rf sound drivers/media drivers/staging drivers/infiniband drivers/bluetooth \
	drivers/net/wireless drivers/net/can drivers/net/usb drivers/net/wwan drivers/isdn \
	drivers/iio drivers/comedi drivers/input/touchscreen drivers/input/joystick \
	drivers/input/tablet drivers/mtd drivers/target \
	drivers/thunderbolt drivers/nfc drivers/w1 \
	drivers/video/fbdev drivers/accel drivers/firewire drivers/atm drivers/fpga \
	drivers/gnss drivers/pcmcia drivers/parport drivers/greybus drivers/most \
	net/bluetooth net/wireless net/mac80211 net/nfc net/can net/atm net/9p \
	net/rxrpc net/ceph net/sunrpc fs/nfs fs/nfsd fs/ceph fs/ocfs2 fs/gfs2 \
	fs/smb fs/9p fs/afs fs/coda fs/dlm fs/orangefs fs/ubifs fs/jffs2
if [ -d drivers/gpu/drm ]; then
	for d in drivers/gpu/drm/*/; do
		case "$d" in
		*/tiny/ | */virtio/ | */bochs/ | */qxl/ | */ttm/ | */display/ | */scheduler/) ;;
		*) rm -rf "$d" ;;
		esac
	done
fi
cd /
in_root depmod -a "$release"

# The initramfs: busybox (for the twinroot script), the file systems the
# script mounts, and the script itself.
install -m 0755 "$hook" "$root/etc/initramfs-tools/scripts/local-bottom/twinroot-data"
printf '%s\n' '# twinroot: mounted by scripts/local-bottom/twinroot-data' overlay ext4 squashfs \
	'# twinroot: watchdogs armed by scripts/init-premount/twinroot-watchdog' i6300esb iTCO_wdt \
	>"$root/etc/initramfs-tools/modules"
# A trial boot (GRUB passes twinroot.trial=1) arms the watchdog as soon as
# its driver is loaded: opened and closed without the magic 'V', it runs on
# with the driver's timeout (30 s for both) until systemd takes it over
# (RuntimeWatchdogSec in system.conf.d/twinroot.conf). A trial that hangs
# before that, or whose root never mounts, is reset and GRUB falls back.
cat >"$root/etc/initramfs-tools/scripts/init-premount/twinroot-watchdog" <<'WATCHDOG'
#!/bin/sh
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in
prereqs)
	prereqs
	exit 0
	;;
esac
for arg in $(cat /proc/cmdline); do
	[ "$arg" = twinroot.trial=1 ] || continue
	if [ -c /dev/watchdog ] && printf . >/dev/watchdog; then
		echo "twinroot-initramfs: watchdog armed"
	else
		echo "twinroot-initramfs: no watchdog: a trial that hangs stays hung"
	fi
done
WATCHDOG
chmod 0755 "$root/etc/initramfs-tools/scripts/init-premount/twinroot-watchdog"
# MODULES=most also carries every Ethernet driver (for a network root) and
# udev's 13 MB hwdb: a twinroot root is on a local disk, and the disk is
# found by its partition label without the hwdb. Hooks in /etc run after
# the packages' hooks.
cat >"$root/etc/initramfs-tools/hooks/twinroot-trim" <<'HOOK'
#!/bin/sh
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in
prereqs)
	prereqs
	exit 0
	;;
esac
rm -rf "${DESTDIR:?}/usr/lib/modules/${version:?}/kernel/drivers/net" "${DESTDIR:?}/usr/lib/udev/hwdb.bin"
HOOK
chmod 0755 "$root/etc/initramfs-tools/hooks/twinroot-trim"
in_root update-initramfs -u -k "$release"
rm -f "$root/boot/initrd.img-$release".*

# Kernel and initramfs at the fixed paths GRUB loads, as regular files.
rm -f "$root/vmlinuz" "$root/vmlinuz.old" "$root/initrd.img" "$root/initrd.img.old" \
	"$root/boot/vmlinuz" "$root/boot/initrd.img"
cp "$root/boot/vmlinuz-$release" "$root/boot/vmlinuz"
cp "$root/boot/initrd.img-$release" "$root/boot/initrd.img"

# systemd-networkd gives DHCP; resolved was enabled by its package.
in_root systemctl enable systemd-networkd.service systemd-networkd-wait-online.service >/dev/null 2>&1

# Root logs in on the serial console without a password (an example only).
# The dates of last password change, which adduser and systemd-sysusers set
# to the day of the build, are cleared (no password aging), and the
# backups of the account files removed.
sed -i 's/^root:[^:]*:/root::/' "$root/etc/shadow"
sed -i -E 's/^([^:]*:[^:]*:)[0-9]*:/\1:/' "$root/etc/shadow"
rm -f "$root/etc/shadow-" "$root/etc/gshadow-" "$root/etc/passwd-" "$root/etc/group-" "$root/etc/subuid-" "$root/etc/subgid-"

# An empty machine-id: the initramfs binds the data partition's copy over it.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"

# Lean: documentation, man pages, locales, apt's lists and caches, logs
# and backups debootstrap leaves behind.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
	"$root"/usr/share/locale/* "$root"/usr/share/lintian "$root"/usr/share/linda \
	"$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
	"$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old "$root"/var/cache/ldconfig/aux-cache \
	"$root"/var/log/* "$root/debootstrap" "$root"/tmp/* "$root"/var/tmp/*
# podman's test helper (36 MB), and the sources of udev's hwdb.bin (9 MB).
rm -f "$root/usr/libexec/podman/podman-testing" "$root"/usr/lib/udev/hwdb.d/*.hwdb
mkdir -p "$root/var/log/journal"
# Mount points of the running system (see doc.go).
mkdir -p "$root/data" "$root/var/lib/containers"
