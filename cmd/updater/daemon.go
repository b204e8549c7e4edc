package main

import (
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/agent"
	"github.com/twinroot/twinroot/internal/cli"
)

type daemonOptions struct {
	apply applyOptions
}

func newDaemonCmd() *cobra.Command {
	var o daemonOptions
	c := &cobra.Command{
		Use:   "daemon",
		Short: "Check the channel and apply updates every check_interval (with jitter) while the machine runs",
		Long: `daemon repeats updater apply every check_interval of device.yaml, plus a
random jitter up to check_jitter so that a fleet does not ask all at once.
A device that a staged rollout has not reached yet checks again at its
turn, when that comes before the next interval. A failed round is logged
and retried at the next interval; a release refused by a rule is logged
once per version. It stops on SIGTERM.
A systemd timer running updater apply does the same job.

` + cli.ExitCodesHelp,
		Example: `  updater daemon
  # or, with systemd: a timer unit with OnUnitActiveSec=1h RandomizedDelaySec=6m running updater apply`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runDaemon(c, o, c.OutOrStdout()) },
	}
	f := c.Flags()
	o.apply.dev.AddFlags(f)
	o.apply.cfg.AddFlags(c)
	o.apply.out.AddFlags(f)
	f.StringVar(&o.apply.reboot, "reboot", "", "reboot policy: now, window or next-boot (default: the config's)")
	return c
}

func runDaemon(c *cobra.Command, o daemonOptions, w io.Writer) error {
	if err := o.apply.validate(); err != nil {
		return err
	}
	log := cli.Logger(os.Stderr, false)
	for {
		wait, err := daemonRound(c, o, w)
		if err != nil {
			return err
		}
		log.Info("next check", "in", wait.Round(time.Second))
		select {
		case <-c.Context().Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// daemonRound runs one round and says when the next is due. Only a device
// that cannot be opened or a config that does not load ends the daemon:
// they will not change by the next interval.
func daemonRound(c *cobra.Command, o daemonOptions, w io.Writer) (time.Duration, error) {
	d, err := openDevice(o.apply.out, o.apply.dev, &o.apply.cfg)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	cfg, err := d.config()
	if err != nil {
		return 0, err
	}
	res, err := applyRound(c, d, o.apply, w)
	switch {
	case err == nil:
	case res.Check.Outcome == agent.CheckRefused:
		// reported by the round, once per version
	default:
		cli.Logger(os.Stderr, false).Error("update round failed; retrying at the next interval", "err", err)
	}
	return res.Check.NextCheck(cfg.NextCheck(), time.Now()), nil
}
