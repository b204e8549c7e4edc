// Package image reads slot images. A slot image is a squashfs filesystem
// (gzip, xz or uncompressed: GRUB 2.06 cannot read zstd squashfs) holding a
// whole root, including /boot/vmlinuz and /boot/initrd.img; the version it
// carries is in /etc/twinroot/version. It is written raw to a slot partition;
// what follows its last byte in the partition is never read.
//
// Subdirectory examples holds the reference systems the tests and the demo
// boot.
package image
