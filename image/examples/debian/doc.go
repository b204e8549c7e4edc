// Package debian builds the root filesystem of the Debian reference system:
// Debian 13 "trixie" with systemd, podman 5.4 (Quadlet) and Debian's 6.12
// kernel, booted from the read-only squashfs slot that `updater build
// --rootfs` makes of it. It is the realistic system of the demo; the minimal
// system (image/examples/minimal) is the fast one of the tests.
//
// # Building
//
// BuildBase makes the base root once and caches it under <cache>/base-<hash>,
// the hash being that of its inputs (suite, mirror, Packages, base.sh, the
// initramfs script): debootstrap --variant=minbase with Packages (cached on
// its own as <cache>/debootstrap-<hash>, so a change to base.sh does not
// download again), then base.sh, which drops the kernel modules a VM or
// appliance has no use for (sound, media, wireless, bluetooth, infiniband,
// staging, most DRM drivers, exotic network file systems...), runs depmod,
// adds busybox and the twinroot initramfs script to the initramfs
// (MODULES=most, plus overlay, ext4, squashfs) and regenerates it, copies
// /boot/vmlinuz and /boot/initrd.img from the versioned files, enables
// systemd-networkd, empties /etc/machine-id, lets root log in without a
// password, and removes documentation, man pages, locales, apt's lists and
// caches and logs. Each stage builds in a temporary directory beside its
// cache entry and renames it at the end, so a failed build leaves nothing
// under a cached name. It needs root and Debian's mirror, and takes about
// three minutes.
//
// Assemble makes the root proper: a hard-link copy of the base (cp -al; a
// plain copy across file systems), the files of the rootfs tree in this
// directory over it (units, fstab, hostname, networkd, journald and container
// settings, and the empty /etc/.updated and /var/.updated stamps, which keep
// ConditionNeedsUpdate= units such as ldconfig.service from trying to write
// to the read-only root at every boot), the links that enable the twinroot
// units, mask systemd-gpt-auto-generator (it would try to automount the ESP)
// and units with nothing to do on a read-only image (apt's timers,
// dpkg-db-backup, e2scrub) and point /etc/resolv.conf at systemd-resolved
// (debootstrap leaves a copy of the build host's), and the updater binary at
// /usr/bin/updater. Files are replaced by removing the link and writing a new
// file, so the cached base is never written through a link. Changing a unit
// therefore takes a second, not a debootstrap. Build does both; the command
// cmd/build-debian wraps Build.
//
// Reproducibility: nothing here adds a time stamp or random bytes. mksquashfs
// (updater build) clamps every time stamp, mkinitramfs runs with
// SOURCE_DATE_EPOCH, and base.sh clears the dates of last password change
// that adduser and systemd-sysusers write into /etc/shadow and removes the
// account files' backups. What debootstrap itself makes irreproducible: the
// package versions (the mirror moves with point releases and security
// updates; use a snapshot.debian.org mirror to pin them), and files the
// maintainer scripts generate (debconf's database, the ca-certificates bundle
// and hwdb.bin follow their packages).
//
// # The running system
//
// GRUB's static grub.cfg boots /boot/vmlinuz and /boot/initrd.img of a slot
// with root=PARTLABEL=twinroot-<slot> ro console=tty0 console=ttyS0,115200:
// the serial port is the system console, so systemd's status lines, the
// updater's outcome lines (twinroot-boot.service and twinroot-update.service
// write to journal+console) and a login prompt (serial-getty@ttyS0, from
// systemd's getty generator) are all on it. Root logs in there without a
// password: this is an example system, not one to ship.
//
// The root stays read-only. What must be writable is set up by the initramfs
// script (initramfs/twinroot-data, run as local-bottom after the slot is
// mounted), because systemd reads /etc/machine-id before anything else and
// only the initramfs runs earlier:
//
//	/var                 overlay: the slot's /var under a tmpfs upper layer
//	                     (/run/twinroot/var), writable and fresh at each
//	                     boot, so nothing stale survives a slot switch
//	/data                ext4 partition labelled twinroot-data, read-write:
//	                     device.yaml and updater state (/data/twinroot)
//	/etc/machine-id      bind mount of /data/twinroot/machine-id, made once
//	                     per data partition: the same ID on every boot and
//	                     after every update
//	/var/log/journal     bind mount of /data/var/log/journal (persistent)
//	/var/lib/containers  bind mount of /data/var/lib/containers: podman's
//	                     writable store, named volumes, networks (a real
//	                     ext4 directory: podman's overlay driver cannot
//	                     work on top of overlayfs)
//	/tmp                 systemd's tmpfs (tmp.mount)
//
// So everything a device keeps is on /data; everything else in /var is lost
// at reboot, on purpose. /etc is the image's: /etc/resolv.conf points to
// systemd-resolved's file in /run, and the hostname is fixed (twinroot).
// Without a data partition the system still boots, with a transient machine
// ID and the journal in memory.
//
// Network: systemd-networkd gives DHCP to en* and eth* (QEMU user networking:
// 10.0.2.15), leaves podman's links and routes alone, and
// network-online.target waits for any link for at most 30 s.
//
// Containers: podman's units from `updater build --containers` are in
// /usr/share/containers/systemd/ and generated by Quadlet at boot. Their
// images come from the read-only additional store /usr/lib/containers/storage
// in the slot, which the units name with GlobalArgs; the writable store is
// /var/lib/containers/storage, with transient_store = true (container
// metadata in /run: containers are recreated at each start). nftables is
// installed because netavark needs nft.
//
// twinroot units: twinroot-boot.service runs `updater boot` once the data
// partition is mounted and the network is online. multi-user.target wants
// twinroot.target, which wants twinroot-boot.service; twinroot.target has
// DefaultDependencies=no, so neither target waits for it: its health gate may
// wait minutes, and the system is up meanwhile. (Ordering it after
// multi-user.target instead would let a service stuck in activating, itself
// part of multi-user.target, keep updater boot from ever running; a target
// waits for every unit it wants unless told otherwise, systemd.target(5).)
// twinroot-update.timer runs twinroot-update.service (`updater apply`) an
// hour after boot and hourly after that, with up to 10 minutes of random
// delay, never while updater boot still runs. Both run only on a twinroot
// boot (twinroot.slot on the kernel command line), and apply only with a
// device config (/data/twinroot/device.yaml; device.yaml here is the demo's).
package debian
