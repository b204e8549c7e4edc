// Command init is PID 1 of the minimal reference system: it mounts the kernel
// filesystems, loads the modules in its initramfs, waits for a disk, brings up
// QEMU's user network, prints its identity, runs `updater boot` and then obeys
// console commands. Package github.com/twinroot/twinroot/image/examples/minimal
// documents the console protocol and builds the initramfs.
//
// Other ways to run it:
//
//	/init health       the health check the updater's gate runs: exit 0 for
//	                   the ok variant, 1 for the unhealthy one
//	reboot, poweroff   (symlinks in /sbin) sync and reboot or power off,
//	                   for an updater that reboots through the usual commands
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

func main() {
	s := newSystem()
	switch {
	case len(os.Args) > 1 && os.Args[1] == "health":
		os.Exit(s.health())
	case filepath.Base(os.Args[0]) == "reboot":
		os.Exit(s.shutdown(unix.LINUX_REBOOT_CMD_RESTART))
	case filepath.Base(os.Args[0]) == "poweroff":
		os.Exit(s.shutdown(unix.LINUX_REBOOT_CMD_POWER_OFF))
	case os.Getpid() != 1:
		fmt.Fprintln(os.Stderr, "twinroot-init: not PID 1; the only command is: init health")
		os.Exit(2)
	}
	// Returning from PID 1 panics the kernel, which the panic variant wants;
	// `panic=N` on the command line turns that into a reboot.
	os.Exit(pid1(s))
}
