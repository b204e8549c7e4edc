package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/agent"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/containers"
	"github.com/twinroot/twinroot/internal/health"
	"github.com/twinroot/twinroot/internal/reboot"
	"github.com/twinroot/twinroot/internal/watchdog"
)

type bootOptions struct {
	dev      cli.Device
	cfg      deviceConfig
	out      cli.Output
	gate     health.Gate
	noReboot bool
	verbose  bool
	watchdog string
}

func newBootCmd() *cobra.Command {
	var o bootOptions
	c := &cobra.Command{
		Use:   "boot",
		Short: "Every-boot entry point: finish a trial boot (health gate, then commit or mark bad and reboot)",
		Long: `boot runs at every boot. On a trial boot it runs the health gate: when
every check passes within the deadline the slot is committed; when one
fails the slot is marked bad and the machine reboots at once into the
committed slot. After GRUB fell back from a trial that never came up
(kernel panic, hang), it records the trial slot as bad. On a trial boot
it takes over the hardware watchdog the system armed early (GRUB passes
twinroot.trial=1), feeds it while the gate runs and disarms it once the
slot is committed; a watchdog PID 1 holds (systemd) is left to PID 1. A version marked
bad is remembered and never retried automatically; a newer one is. When
the data partition is too full to remember it, the failed trial is not
marked bad but left all the same: GRUB falls back once its tries are used,
and the boot after records it.

Then, when the device config exists, it checks the release channel and
applies a newer release as updater apply does.

` + cli.ExitCodesHelp,
		Example: `  updater boot --health-cmd "systemctl is-system-running --wait" --health-timeout 2m`,
		Args:    cli.NoArgs,
		RunE:    func(c *cobra.Command, _ []string) error { return runBoot(c, o, c.OutOrStdout()) },
	}
	f := c.Flags()
	o.dev.AddFlags(f)
	o.cfg.AddFlags(c)
	o.out.AddFlags(f)
	f.StringArrayVar(&o.gate.Commands, "health-cmd", nil, "command that must exit 0 for the trial to pass (repeatable)")
	f.StringArrayVar(&o.gate.Units, "health-unit", nil, "systemd unit that must be active (repeatable)")
	f.DurationVar(&o.gate.Deadline, "health-timeout", 2*time.Minute, "deadline for the health gate")
	f.BoolVar(&o.noReboot, "no-reboot", false, "do not reboot after a failed health gate (exit 4 instead)")
	f.StringVar(&o.watchdog, "watchdog", watchdog.Device, `watchdog a trial boot feeds while the gate runs and disarms on commit; "" leaves it alone (never touched with --disk)`)
	f.BoolVarP(&o.verbose, "verbose", "v", false, "debug logging")
	return c
}

func runBoot(c *cobra.Command, o bootOptions, w io.Writer) error {
	d, err := openDevice(o.out, o.dev, &o.cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	log := cli.Logger(os.Stderr, o.verbose)
	cfg, cfgErr := d.config()
	b := agent.Boot{Disk: d.disk, Running: d.running, Gate: o.gate, Log: log}
	if !d.offline {
		b.Watchdog = o.watchdog
	}
	if cfgErr == nil {
		b.State = &d.state
		b.Reporter = d.reporter(c.Context(), log)
		if len(o.gate.Commands)+len(o.gate.Units) == 0 {
			b.Gate = health.Gate{Commands: cfg.Health.Commands, Units: cfg.Health.Units, Deadline: cfg.Health.Deadline}
		}
		if len(cfg.Health.Containers) > 0 {
			bundle, err := containers.ReadBundle("/")
			if err != nil {
				return err
			}
			b.Gate.Probes = containers.Inspector{}.Probes(bundle, cfg.Health.Containers)
		}
	}
	r, err := b.Run(c.Context())
	if o.out.JSON() {
		cli.WriteJSON(w, r)
	} else if r.Outcome != "" {
		fmt.Fprintf(w, "twinroot: %s: %s\n", r.Outcome, r.Message)
	}
	if err != nil {
		return err
	}
	if !r.Reboot {
		if errors.Is(cfgErr, os.ErrNotExist) {
			log.Info("no device config: not checking for updates", "config", d.cfgPath)
			return nil
		}
		if cfgErr != nil {
			return cfgErr
		}
		if r.Phase != bootstate.Committed && r.Phase != bootstate.TrialFailed {
			return nil // a trial is pending or this slot is not the committed one
		}
		_, err := applyRound(c, d, applyOptions{out: o.out}, w)
		return err
	}
	if o.noReboot || d.offline {
		return agent.ErrRebootNeeded
	}
	fmt.Fprintln(w, "twinroot: rebooting")
	d.Close()
	return reboot.Now()
}
