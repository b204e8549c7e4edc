// Package partition owns the twinroot disk layout: a GUID partition table with
// five partitions, written and read with go-diskfs, and the choice of the disk
// to install to.
//
// # Disk layout
//
// All partitions start on a 1 MiB boundary; sizes are in bytes.
//
//	#  label          type                      size             content
//	1  twinroot-bios  BIOS boot (EF02)          1 MiB            GRUB core.img for BIOS
//	2  twinroot-esp   EFI System (EF00)         128 MiB          FAT32: GRUB, grub.cfg, grubenv copies
//	3  twinroot-a     Linux root x86-64         slot size        slot A: a raw slot image
//	4  twinroot-b     Linux root x86-64         slot size        slot B: a raw slot image
//	5  twinroot-data  Linux filesystem (8300)   rest of the disk ext4: /var, /home, config, state
//
// The partition labels are what identifies a twinroot disk: Read refuses a
// table whose partitions do not carry these labels in this order. A disk
// "holds twinroot data" when its partition 5 is labelled twinroot-data.
package partition
