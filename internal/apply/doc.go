// Package apply writes a new version into the inactive slot and arms it for
// a trial boot. The order is the boot protocol's: the slot is marked
// "writing" before its first byte is overwritten, the image is hashed while
// written and read back, and only a verified slot is armed.
package apply
