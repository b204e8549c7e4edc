// Package initramfs builds Linux initramfs archives: a Tree of files,
// directories, device nodes and symlinks written as a reproducible
// gzip-compressed newc cpio (sorted names, inode numbers by position, every
// time and owner zero), the kernel modules a system loads at boot resolved
// with their dependencies against a kernel's modules.dep, and the shared
// libraries a dynamically linked program needs.
//
// The minimal reference system (image/examples/minimal) and the installer
// ISO (internal/iso) build their initramfs with it.
package initramfs
