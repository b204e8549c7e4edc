// Package grub owns everything GRUB reads: the environment block format
// (byte-compatible with grub-editenv), the redundant boot environment and
// its write order, the static grub.cfg, and the installation of GRUB for
// BIOS (boot.img in the MBR, core.img in the BIOS boot partition) and UEFI
// (BOOTX64.EFI on a FAT32 ESP built in user space).
//
// # Environment block
//
// A block is EnvSize (1024) bytes: "# GRUB Environment Block\n", Debian's
// warning comment line, then one "name=value\n" line per variable, with '\\'
// and '\n' in values escaped by a backslash, then '#' up to the end. GRUB's
// save_env rewrites a block in place and never changes its size.
//
// # ESP
//
//	/EFI/BOOT/BOOTX64.EFI       GRUB for UEFI, prefix /boot/grub
//	/boot/grub/grub.cfg         static script, written once at install
//	/boot/grub/twinroot/lock.1  {twinroot_editing=0|1}
//	/boot/grub/twinroot/env.1   boot state, copy 1
//	/boot/grub/twinroot/lock.2
//	/boot/grub/twinroot/env.2   boot state, copy 2
//
// Every file is contiguous, so twinroot rewrites the environment blocks at
// their disk offsets without touching FAT metadata, as GRUB does.
//
// # Redundant boot environment
//
// Reading (grub.cfg, and EnvStore.Load the same way): copy 1 when lock.1
// holds twinroot_editing=0, else copy 2; when the chosen env block has no
// signature, the other copy. As in GRUB's load_env, a block with the
// signature loads even when a line of it is broken: the variables before
// the break are set, a name that occurs twice takes its last value, and
// names and values end at a NUL byte.
//
// Writing (EnvStore.Save, and grub.cfg when it counts down a trial boot):
// first the copy the reader does not choose now, then the other one; each
// copy as lock.N=1, env.N, lock.N=0, every block synced before the next.
// While copy N is written its lock sends the reader to the other copy, which
// is complete: a power cut at any instant, even one that garbles the sector
// being written, leaves the old or the new state readable. The variables are
// described in package bootstate.
//
// # Boot
//
// grub.cfg boots the trial slot when it is ok and has tries left, saving the
// decremented count before the kernel starts, so a panic (panic= on the
// command line) or a hang uses a try up; otherwise the committed slot. The
// kernel command line carries twinroot.slot=a|b, and twinroot.trial=1 on a
// trial boot, so that the system arms a hardware watchdog early (package
// watchdog) and a hang ends in a reset. A kernel that does not load
// makes the script fall through to the committed slot.
package grub
