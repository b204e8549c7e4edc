// Package reboot restarts the machine the updater runs on.
//
// Under systemd (sd_booted: /run/systemd/system exists) it asks PID 1 for
// an orderly reboot, `systemctl reboot`: services (bundled containers
// among them) are stopped, the journal is flushed and file systems are
// unmounted before the machine restarts. reboot(2) straight from the
// updater skipped all of that, and lost the updater's last lines that
// journald had not read yet. On any other system, or when systemctl
// fails, it syncs and calls reboot(2) itself, as an init without a
// service manager expects (the minimal reference system).
package reboot

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// Now reboots the machine. Under systemd it returns once the reboot is
// queued, and PID 1 stops the caller with everything else; otherwise it
// returns only on failure.
func Now() error {
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		out, err := exec.Command("systemctl", "reboot").CombinedOutput()
		if err == nil {
			return nil
		}
		fmt.Fprintf(os.Stderr, "twinroot: systemctl reboot: %v %s; rebooting directly\n", err, strings.TrimSpace(string(out)))
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return nil
}
