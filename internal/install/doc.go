// Package install puts twinroot on a disk: the partition table, the first
// version in slot A (hashed while written, read back and verified), an ext4
// data partition seeded with the device config, and GRUB for BIOS and UEFI
// with a boot state that commits slot A.
//
// Every check runs before the first byte is written: the image must be a
// squashfs that fits the slot, the disk large enough, not the boot medium,
// without mounted filesystems, and without twinroot data unless WipeData is
// set. The order of the writes makes an interrupted install harmless: GRUB
// and the boot state are written last, so a disk whose slot A was not
// written and verified has no bootable slot.
//
// # Data partition
//
// ext4, label twinroot-data. The installer seeds it with:
//
//	/twinroot/device.yaml   the device config (mode 0600), when one is given
package install
