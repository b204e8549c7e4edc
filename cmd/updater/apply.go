package main

import (
	"cmp"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/agent"
	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/reboot"
)

type applyOptions struct {
	dev      cli.Device
	cfg      deviceConfig
	out      cli.Output
	from     string
	tries    int
	reboot   string
	readBack bool
	now      bool
}

func newApplyCmd() *cobra.Command {
	var o applyOptions
	c := &cobra.Command{
		Use:   "apply [--image PATH]",
		Short: "Write the channel's newer release (or a local image) into the inactive slot and arm it",
		Long: `apply checks the release channel of device.yaml and, when a newer release
passes every rule, writes it into the inactive slot: the slot is marked not
bootable first, chunks the running slot already has are copied locally and
the rest fetched with Range requests, every chunk is checked against the
signed chunk index before it is written, progress is journaled so that a
power cut or a lost connection resumes (chunks an earlier run wrote are read
back and checked again), and only then is the slot armed for a trial boot.
--read-back also reads the whole slot back from the disk before arming it.
The reboot follows the config's policy (now, in the
maintenance window, or at the next boot), or --reboot.

A release with a staged rollout (updater publish --rollout) is taken only
once the rollout has reached this device's place in the fleet (its bucket,
from /etc/machine-id or device.yaml's rollout.pin), and never while the
rollout is paused, unless the device already began writing it; until
then apply says "waiting" and when its turn comes. --now takes it at once.

With --from, the release comes from local media instead of the channel's
store: a build output directory of updater build (signed with updater
sign), a directory holding a channel's layout (<channel>/latest.json), or
any source URL. It passes the same rules (signature by a key the running
image trusts, the config's channel, expiry, serial, bad versions, size) and
takes the same journaled, resumable, delta path.

` + cli.ExitCodesHelp,
		Example: `  updater apply
  updater apply --reboot next-boot
  updater apply --now                    # before this device's turn in a staged rollout
  updater apply --from /media/usb/release --reboot now
  updater apply --disk disk.img --running-slot a --config device.yaml --state-dir state/`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runApply(c, o, c.OutOrStdout()) },
	}
	f := c.Flags()
	o.dev.AddFlags(f)
	o.cfg.AddFlags(c)
	o.out.AddFlags(f)
	f.StringVar(&o.from, "from", "", "release directory or source URL to apply instead of the config's source")
	f.IntVar(&o.tries, "tries", 0, "trial boots before GRUB falls back, 1 to 3 (default: trial_boots of the config, else 1)")
	f.StringVar(&o.reboot, "reboot", "", "reboot policy for this run: now, window or next-boot (default: the config's)")
	f.BoolVar(&o.readBack, "read-back", false, "read the whole slot back from the disk and check it before arming it")
	f.BoolVar(&o.now, "now", false, "take the release now, whatever its staged rollout says (this device's turn, a pause)")
	return c
}

func runApply(c *cobra.Command, o applyOptions, w io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	d, err := openDevice(o.out, o.dev, &o.cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	if _, err := d.config(); err != nil {
		return err
	}
	_, err = applyRound(c, d, o, w)
	return err
}

// validate checks the flags that openDevice does not.
func (o applyOptions) validate() error {
	if o.tries < 0 || o.tries > config.MaxTrialBoots {
		return cli.UsageError{Err: fmt.Errorf("--tries %d: want 1 to %d", o.tries, config.MaxTrialBoots)}
	}
	switch config.Policy(o.reboot) {
	case "", config.PolicyNow, config.PolicyWindow, config.PolicyNextBoot:
		return nil
	}
	return cli.UsageError{Err: fmt.Errorf("--reboot %q: want now, window or next-boot", o.reboot)}
}

// applyRound runs one round of the channel (agent.Round) on a device
// whose config loaded, prints it, and reboots when the round says so:
// updater apply, boot and daemon share it.
func applyRound(c *cobra.Command, d *device, o applyOptions, w io.Writer) (agent.RoundResult, error) {
	cfg := d.cfg
	policy := cfg.Reboot
	if o.reboot != "" {
		policy.Policy = config.Policy(o.reboot)
	}
	tries := cmp.Or(o.tries, cfg.TrialBoots)
	src, err := d.source(c.Context(), o.from)
	if err != nil {
		return agent.RoundResult{}, err
	}
	ck, err := d.checker(src)
	if err != nil {
		return agent.RoundResult{}, err
	}
	log := cli.Logger(os.Stderr, false)
	u := &agent.Updater{Disk: d.disk, Running: d.running, Source: src, Channel: cfg.Channel, Tries: tries, State: d.state,
		Progress: cli.Progress(os.Stderr, "writing slot "+string(d.running.Other())), Log: log, ReadBack: o.readBack}
	ck.Force, ck.Log = o.now, log
	round := agent.Round{Checker: ck, Updater: u, Reboot: policy, Offline: d.offline, Reporter: d.reporter(c.Context(), log), Log: log}
	res, err := round.Run(c.Context())
	if o.out.JSON() {
		cli.WriteJSON(w, res)
		w = os.Stderr // stdout holds one JSON document
	} else if a := res.Apply; a != nil {
		fmt.Fprintf(w, "slot %s: %s (serial %d) written and verified; fetched %d bytes, reused %d; armed for %d trial boot(s)\n",
			a.Slot, a.Version, a.Serial, a.Stats.FetchedCompressed, a.Stats.Reused, a.State.Tries)
	} else if res.Check.Outcome != "" {
		fmt.Fprintf(w, "%s: %s\n", res.Check.Outcome, res.Check.Reason)
	}
	if err != nil {
		return res, err
	}
	if !res.RebootNow() {
		if res.Message != "" {
			fmt.Fprintln(w, res.Message)
		}
		return res, nil
	}
	fmt.Fprintln(w, "twinroot: "+res.Message)
	return res, reboot.Now()
}
