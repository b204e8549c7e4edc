package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/iso"
	"github.com/twinroot/twinroot/internal/partition"
)

// mediumDir is where the live installer mounts the medium it booted from.
const mediumDir = "/run/twinroot/medium"

func newLiveCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "live",
		Short:  "The installer ISO's init: install the bundled release, then power off",
		Hidden: true,
		Long: `live runs as PID 1 of the installer ISO's initramfs. It reads
twinroot.disk=, twinroot.yes=1 and twinroot.wipe-data=1 from the kernel
command line, installs the release on the medium and powers off. On a
failure it prints "install failed: <reason>" and powers off only after
Enter is pressed.

` + cli.ExitCodesHelp,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if os.Getpid() != 1 {
				return cli.UsageError{Err: fmt.Errorf("live runs only as the installer ISO's init (PID 1)")}
			}
			runLive(c)
			return nil
		},
	}
}

// runLive never returns: PID 1 exiting panics the kernel.
func runLive(c *cobra.Command) {
	setupErrs := iso.SetupPID1()
	out, ins := iso.Consoles()
	say := func(format string, a ...any) { fmt.Fprintf(out, "twinroot installer: "+format+"\n", a...) }
	// Kernel messages (disks appearing) would break into the installer's lines.
	os.WriteFile("/proc/sys/kernel/printk", []byte("4\n"), 0o644)
	say("starting")
	for _, err := range setupErrs {
		say("setup: %v", err)
	}
	ask := iso.LineReader(out, ins...)
	l := &iso.Live{
		Cmdline:  "/proc/cmdline",
		Finder:   partition.System(),
		MountDir: mediumDir,
		Mount:    iso.MountISO,
		Out:      out,
		Ask:      ask,
		Wait:     20 * time.Second,
	}
	_, err := l.Run(c.Context())
	if err == nil {
		say("done: remove the installer medium; powering off")
		time.Sleep(time.Second)
		if err := iso.PowerOff(mediumDir); err != nil {
			say("power off: %v", err)
		}
		select {}
	}
	fmt.Fprintf(out, "install failed: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
	for {
		ask("twinroot installer: press Enter to power off\n")
		if err := iso.PowerOff(mediumDir); err != nil {
			say("power off: %v", err)
		}
	}
}
