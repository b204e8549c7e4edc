package main

import (
	"errors"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

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
A failed round is logged and retried at the next interval; a release
refused by a rule is logged once per version. It stops on SIGTERM.
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
	log := cli.Logger(os.Stderr, false)
	for {
		cfg, _, err := o.apply.cfg.load()
		if err != nil {
			return err // a config that does not load will not load next hour either
		}
		err = runApply(c, o.apply, w)
		switch {
		case err == nil:
		case errors.Is(err, cli.ErrRefused):
			// already reported by the check, once per version
		default:
			log.Error("update round failed; retrying at the next interval", "err", err)
		}
		wait := cfg.NextCheck()
		log.Info("next check", "in", wait.Round(time.Second))
		select {
		case <-c.Context().Done():
			return nil
		case <-time.After(wait):
		}
	}
}
