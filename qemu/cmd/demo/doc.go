// Command demo tells the story of twinroot's boot protocol to a newcomer,
// with real GRUB, a real kernel and real disk writes under QEMU:
//
//  1. build the minimal reference system at v1.0.0 and v2.0.0 (healthy) and
//     v3.0.0 (its init gives up, so the kernel panics);
//  2. install v1.0.0 on a fresh disk image and boot it: GRUB boots the
//     committed slot A;
//  3. stage v2.0.0 into slot B (as `updater apply` does) and boot: GRUB tries
//     B once, `updater boot` passes the health check and commits it; a reboot
//     stays on B;
//  4. stage v3.0.0 into slot A and boot: the kernel panics, GRUB falls back to
//     B by itself, and `updater boot` records A as bad.
//
// It prints a timeline with elapsed seconds and writes the console of each
// boot to a log file in --work (--verbose streams it too). Any console line
// that does not come within --step-timeout ends the demo with a one-line
// reason and exit code 1.
//
//	go run ./qemu/cmd/demo --kernel-dir build/kernel --grub-dir build/grub \
//		--updater build/bin/updater --work build/demo [--firmware uefi]
package main
