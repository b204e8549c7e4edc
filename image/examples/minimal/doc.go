// Package minimal builds the minimal reference system: a Debian kernel and a
// tiny initramfs whose /init (image/examples/minimal/init) loads the storage
// and network modules, prints who it is, runs the updater and then obeys
// simple console commands. It boots in seconds under QEMU/TCG, which is why
// most end-to-end tests use it.
//
// A slot image of the minimal system is a squashfs holding
//
//	/boot/vmlinuz           the kernel from KernelDir (see fetch-kernel.sh)
//	/boot/initrd.img        the initramfs built by BuildInitramfs
//	/etc/twinroot/version   the version string
//
// and the initramfs (a gzip-compressed newc cpio, byte-reproducible) holds
//
//	/init                               static init program (built with the go tool)
//	/sbin/reboot, /sbin/poweroff        symlinks to /init (for the updater)
//	/bin/updater                        optional static updater binary
//	/etc/twinroot/version, variant      identity printed at boot
//	/lib/modules/<release>/...          the modules init loads, their dependencies,
//	                                    and a modules.dep listing only them
//	/dev/console, /dev/null             so the kernel can give init a console
//
// The variant selects a behaviour the boot protocol must survive: OK boots
// and passes the health check, Panic makes init exit (a kernel panic, which
// `panic=N` turns into a reboot), Unhealthy boots but fails the health check,
// Hang stops after printing its identity and never runs the updater (only a
// watchdog ends it).
//
// On a trial boot (twinroot.trial=1 on the kernel command line, as GRUB
// passes it) init arms the watchdog right after loading its modules
// (i6300esb is among them), with the timeout of twinroot.watchdog=SECONDS
// or 30 s, and prints "twinroot-init: watchdog armed (<timeout>)" or why
// not; `updater boot` takes it over (package watchdog).
//
// At boot init also gives the first Ethernet interface QEMU user networking's
// address (10.0.2.15/24 via 10.0.2.2; twinroot.ip=ADDR/N,GW or twinroot.ip=off
// on the kernel command line change that) and, when a partition labelled
// twinroot-<slot> exists, mounts that slot image read-only on
// /run/twinroot/slot and binds its /usr over the initramfs's, so the updater
// finds the image's trusted keys and containers where a full system has them.
// It mounts the ext4 partition labelled twinroot-data read-write on /data,
// where the updater finds its device config (/data/twinroot/device.yaml) and
// the state_dir the tests point there; it prints
// "twinroot-init: data partition <dev> on /data", or that there is none.
//
// BuildRoot writes the root of a slot image into a directory instead, for
// a release build (image.Build) that adds trusted keys and a serial.
//
// The console protocol of init, which tests drive through the serial port
// (setup lines such as "twinroot-init: network ..." come first):
//
//	twinroot-init: slot=<slot> version=<version> variant=<variant>
//	twinroot-init: hang variant, hanging        (the hang variant; nothing follows)
//	twinroot-init: updater boot exit=<code>     (only when /bin/updater exists)
//	twinroot-init: ready
//
// after which init reads lines: "reboot", "poweroff", "run ARGS..." (runs
// /bin/updater ARGS and prints "twinroot-init: run exit=<code>"); anything
// else prints "twinroot-init: unknown command".
package minimal
