package minimal

// modules are the kernel modules the minimal system loads at boot, by name
// (hyphens and underscores are interchangeable, as for modprobe). Their
// dependencies from modules.dep come along. Debian's kernel builds all of them
// as modules; one that the kernel has built in is skipped.
var modules = []string{
	// Disks: virtio, SATA/IDE, NVMe, CD-ROM (installer ISO), USB sticks.
	"virtio_pci", "virtio_blk", "virtio_scsi", "ahci", "ata_piix", "sd_mod",
	"sr_mod", "cdrom", "nvme", "xhci_pci", "ehci_pci", "uhci_hcd", "usb_storage",
	// Filesystems: the data partition, the ESP, slot images, the ISO.
	// ext4 asks the crypto API for crc32c at mount time, through a modprobe
	// helper the initramfs does not have, so the implementations are loaded up front.
	"ext4", "crc32c_generic", "crc32c_intel", "vfat", "nls_cp437", "nls_ascii",
	"nls_utf8", "squashfs", "isofs", "loop", "overlay",
	// Network (QEMU's virtio-net and default e1000), entropy, the watchdog.
	"virtio_net", "e1000", "virtio_rng", "i6300esb",
}
