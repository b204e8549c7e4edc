package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/agent"
	"github.com/twinroot/twinroot/internal/cli"
)

type checkOptions struct {
	dev cli.Device
	cfg deviceConfig
	out cli.Output
}

func newCheckCmd() *cobra.Command {
	var o checkOptions
	c := &cobra.Command{
		Use:   "check",
		Short: "Ask the release channel whether an update applies, and why not when it does not",
		Long: `check fetches the channel's latest.json with a conditional GET (nothing is
transferred when it did not change), verifies it with the keys baked into
the running image and every acceptance rule (signature, channel, expiry,
serial, anti-rollback floor, bad versions, slot size), and says whether an
update applies. A refusal is reported with the rule that failed. A release
whose staged rollout has not reached this device yet is "waiting", with
when its turn comes.

Exit 0 when an update is available, waiting, or the device is up to date,
3 when the channel's release is refused.

` + cli.ExitCodesHelp,
		Example: `  updater check
  updater check -o json --disk disk.img --running-slot a --config device.yaml --state-dir state/`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runCheck(c, o, c.OutOrStdout()) },
	}
	o.dev.AddFlags(c.Flags())
	o.cfg.AddFlags(c)
	o.out.AddFlags(c.Flags())
	return c
}

func runCheck(c *cobra.Command, o checkOptions, w io.Writer) error {
	d, err := openDevice(o.out, o.dev, &o.cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	cfg, err := d.config()
	if err != nil {
		return err
	}
	src, err := d.source(c.Context(), "")
	if err != nil {
		return err
	}
	ck, err := d.checker(src)
	if err != nil {
		return err
	}
	r, err := ck.Check(c.Context())
	if err != nil {
		return err
	}
	if o.out.JSON() {
		if err := cli.WriteJSON(w, r); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "%s: %s\n", r.Outcome, r.Reason)
	}
	if r.Outcome == agent.CheckRefused {
		if r.FirstReport {
			cli.Logger(os.Stderr, false).Error("release refused", "channel", cfg.Channel, "reason", r.Reason)
		}
		return r.Err
	}
	return nil
}
