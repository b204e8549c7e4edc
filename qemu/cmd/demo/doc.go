// Command demo tells the story of twinroot's updates to a newcomer, with a
// real MinIO, real GRUB, a real kernel and real disk writes under QEMU:
//
//  1. start MinIO on 127.0.0.1 as the release store, and build signed
//     releases of the minimal reference system: v1.0.0 and v2.0.0 (healthy)
//     and v3.0.0 (it boots, but its health check fails);
//  2. boot the installer ISO (--iso, from `make iso`; or one the demo builds)
//     with an empty disk, as a user would: it shows its plan and asks, the
//     demo types yes, and it installs v1.0.0 with a device.yaml on the data
//     partition pointing at the store and powers off; publish v2.0.0;
//  3. boot: `updater boot` on v1.0.0 finds v2.0.0, streams it into slot B,
//     verifies it, arms one trial and reboots; GRUB tries B once, the health
//     check passes and `updater boot` commits it;
//  4. publish v3.0.0 and boot again: v2.0.0 takes it into slot A and reboots
//     into its trial; the health check fails, so `updater boot` marks A bad
//     and reboots into B, where v3.0.0 is refused without being fetched.
//
// The guest reaches MinIO through QEMU's restricted user networking with one
// guestfwd, which QEMU connects once per start: each boot is a QEMU of its
// own (-no-reboot), all leading to one forwarder on 127.0.0.1.
//
// It prints a timeline with elapsed seconds and writes the console of each
// boot to a log file in --work (--verbose streams it too). Any console line
// that does not come within --step-timeout ends the demo with a one-line
// reason and exit code 1. MinIO comes from `make s3-servers`.
//
//	go run ./qemu/cmd/demo --kernel-dir build/kernel --grub-dir build/grub \
//		--updater build/bin/updater --work build/demo [--firmware uefi] \
//		[--iso build/installer.iso --key build/keys/release.key]
package main
