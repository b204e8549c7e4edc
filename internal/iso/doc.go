// Package iso owns the installer ISO: Build makes it from a signed release
// build directory, a device config, a Debian kernel and the installer
// binary; Live is what runs from it, as the init program of its initramfs,
// and installs the bundled release onto the machine's disk.
//
// # Layout
//
// One hybrid image boots four ways: by BIOS and UEFI from a CD drive (El
// Torito), and by BIOS and UEFI when written raw to a USB stick (an MBR
// with GRUB's boot_hybrid.img, and a GPT whose second partition is the EFI
// system partition). xorriso writes it; every file and date in it comes
// from the inputs, so the same inputs give the same bytes.
//
//	/boot/grub/i386-pc/eltorito.img   GRUB for BIOS (El Torito, no emulation; the
//	                                  hybrid MBR loads it from a stick too)
//	/boot/grub/efi.img                FAT image holding /EFI/BOOT/BOOTX64.EFI: the
//	                                  El Torito UEFI entry, and GPT partition 2
//	/boot/grub/grub.cfg               one menu entry that boots the installer
//	/boot/vmlinuz                     the Debian kernel
//	/boot/initrd.img                  the installer's initramfs (below)
//	/twinroot/medium-<ID>             marker GRUB searches for to find this medium
//	/twinroot/release/slot.img        the first version's slot image
//	/twinroot/release/manifest.json   its signed manifest
//	/twinroot/release/chunks.idx      its chunk index: every chunk of slot.img
//	                                  is checked against it as it is written
//	/twinroot/device.yaml             the device config seeded onto the data partition
//	/twinroot/grub/                   boot.img, core.img, BOOTX64.EFI for the target disk
//
// ID is 16 hex digits of the SHA-256 of the signed manifest; the volume ID
// is TWINROOT_<first 8 of ID, upper case>. Both GRUB images carry a small embedded
// config that searches for the marker file and then reads grub.cfg beside
// it, so GRUB finds its files whatever the firmware calls the drive. The
// menu has one entry, started after 3 seconds (Options.Timeout), and its
// console is both the screen and the first serial port.
// The kernel command line carries twinroot.medium=<volume ID>, by which
// the installer finds the device it booted from.
//
// The initramfs (gzip newc cpio, reproducible) holds
//
//	/init, /bin/installer       the installer binary (static); as PID 1 it runs `installer live`
//	/sbin/mke2fs, mkfs.ext4     from the build host, with its libraries and /etc/mke2fs.conf
//	/lib/modules/<release>/     disk, CD, USB and ISO 9660 drivers with a modules.dep
//	/dev/console, /dev/null
//
// # What runs from it
//
// Live mounts the medium, verifies the bundled manifest against the keys
// the image itself trusts, picks the target (twinroot.disk= on the kernel
// command line, or the first non-removable disk that is not the medium),
// shows the plan, asks for confirmation unless twinroot.yes=1, and runs
// install.Install with the manifest's SHA-256, so a corrupted image is
// refused before GRUB is installed. A disk holding twinroot data is refused
// unless twinroot.wipe-data=1. The installer never checks the manifest's
// expiry: a medium is installed long after it is made, and the device
// checks its channel's manifests itself once it runs.
package iso
