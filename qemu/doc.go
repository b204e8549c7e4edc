// Package qemu boots disk images under QEMU and lets tests talk to the
// guest's serial console. It is the harness of twinroot's end-to-end tests:
// the installer ISO, an installed disk, a power cut in the middle of an
// update, a fallback boot, all run as real QEMU guests.
//
// # Machine
//
// Every guest is an x86-64 `-machine pc` (i440fx) under `-accel tcg`: the
// machines this project runs on have no usable KVM. pc is enough for both
// firmwares the product supports: SeaBIOS (the default firmware of pc) and
// OVMF (OVMF_CODE_4M.fd, loaded as pflash; pc runs it as long as Secure Boot,
// which needs q35's SMM, is not wanted). ISOs hang off the IDE bus like on
// most PCs, disks default to virtio-blk, and a USB stick is a usb-storage
// device with removable=on behind a qemu-xhci controller (both firmwares boot
// from it). Each UEFI guest gets a fresh copy of OVMF_VARS_4M.fd in its own
// temporary directory unless Config.OVMFVars names a file to keep.
//
// QEMU's default NIC is always removed. The only network a guest can get is
// Config.NetDev, which must be QEMU user networking with restrict=on, so a
// guest reaches nothing but the guestfwd targets on 127.0.0.1 that a test
// sets up; hostfwd and guestfwd rules must name 127.0.0.1.
//
// # Console
//
// The first serial port is connected to QEMU's stdin and stdout. The harness
// removes what makes firmware output hard to match before anything sees it:
// carriage returns, other control characters and ANSI escape sequences
// (SeaBIOS, GRUB and OVMF all clear the screen and move the cursor; a cursor
// move to another row becomes a line break so that GRUB's menus stay
// readable). Expect and ExpectAny match regular expressions against the
// cleaned console one line at a time; the last, unfinished line is matched
// too, so a shell prompt without a newline can be waited for. A match
// consumes the console up to its end, so the next Expect only sees what came
// after it (pexpect's model). Config.Log receives the cleaned console,
// Config.RawLog the bytes exactly as QEMU wrote them.
//
// Send types on the same serial port. QEMU itself loses no input, but the
// firmware does poll the port: SeaBIOS (its sercon) and OVMF (its terminal
// driver) turn serial input into key presses. A GRUB with
// `terminal_input serial` reads the UART directly and so loses the keys the
// firmware grabbed first (about one run in three lost the first characters
// here); a GRUB that should take keys from a test needs
// `terminal_input console`. Once Linux runs, the firmware is gone and the
// tty buffers input as usual.
//
// Timeouts belong to the caller: a guest under TCG takes seconds where real
// hardware takes milliseconds (OVMF alone needs several seconds to reach the
// boot loader), and only the test knows what it is waiting for.
//
// # Lifetime
//
// QEMU never outlives its test: it is killed when the context given to Start
// is canceled, when Kill or Close is called, and (on Linux) by the kernel
// when the process that started it dies (Pdeathsig). StartT ties all of that
// to a testing.TB.
package qemu
