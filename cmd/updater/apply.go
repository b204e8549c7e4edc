package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/twinroot/twinroot/internal/agent"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/state"
)

type applyOptions struct {
	dev      cli.Device
	cfg      deviceConfig
	out      cli.Output
	from     string
	tries    int
	reboot   string
	readBack bool
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

With --from, the release comes from local media instead of the channel's
store: a build output directory of updater build (signed with updater
sign), a directory holding a channel's layout (<channel>/latest.json), or
any source URL. It passes the same rules (signature by a key the running
image trusts, the config's channel, expiry, serial, bad versions, size) and
takes the same journaled, resumable, delta path.

` + cli.ExitCodesHelp,
		Example: `  updater apply
  updater apply --reboot next-boot
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
	return c
}

func runApply(c *cobra.Command, o applyOptions, w io.Writer) error {
	if err := o.out.Validate(); err != nil {
		return err
	}
	if o.tries < 0 || o.tries > 3 {
		return cli.UsageError{Err: fmt.Errorf("--tries %d: want 1 to 3", o.tries)}
	}
	d, running, err := o.dev.Open()
	if err != nil {
		return err
	}
	defer d.Close()
	cfg, st, err := o.cfg.load()
	if err != nil {
		return err
	}
	return applyChannel(c, d, running, cfg, st, o, w)
}

// applyChannel applies the newest release of the config's channel on a
// disk already open, with the config already loaded: updater boot shares it.
func applyChannel(c *cobra.Command, d *bootstate.Disk, running bootstate.Slot, cfg *config.Config, st state.Store, o applyOptions, w io.Writer) error {
	progress := cli.Progress(os.Stderr, "writing slot "+string(running.Other()))
	tries := o.tries
	if tries == 0 {
		tries = cfg.TrialBoots
	}
	policy := cfg.Reboot.Policy
	if o.reboot != "" {
		policy = config.Policy(o.reboot)
		if policy != config.PolicyNow && policy != config.PolicyWindow && policy != config.PolicyNextBoot {
			return cli.UsageError{Err: fmt.Errorf("--reboot %q: want now, window or next-boot", o.reboot)}
		}
	}
	src, err := openSource(c.Context(), cfg, o.from)
	if err != nil {
		return err
	}
	ck, err := newChecker(d, running, cfg, st, src)
	if err != nil {
		return err
	}
	cr, err := ck.Check(c.Context())
	if err != nil {
		return err
	}
	if cr.Outcome != agent.CheckAvailable {
		if o.out.JSON() {
			cli.WriteJSON(w, cr)
		} else {
			fmt.Fprintf(w, "%s: %s\n", cr.Outcome, cr.Reason)
		}
		if cr.Outcome == agent.CheckRefused {
			return cli.Refused(cr.Reason)
		}
		return nil
	}
	u := agent.Updater{Disk: d, Running: running, Source: src, Channel: cfg.Channel, Tries: tries, State: st,
		Progress: progress, Log: cli.Logger(os.Stderr, false), ReadBack: o.readBack}
	r, err := u.Apply(c.Context(), cr.Manifest)
	if err != nil {
		return err
	}
	if o.out.JSON() {
		cli.WriteJSON(w, r)
	} else {
		fmt.Fprintf(w, "slot %s: %s (serial %d) written and verified; fetched %d bytes, reused %d; armed for %d trial boot(s)\n",
			r.Slot, r.Version, r.Serial, r.Stats.FetchedCompressed, r.Stats.Reused, r.State.Tries)
	}
	if o.out.JSON() {
		w = os.Stderr // stdout holds one JSON document
	}
	return rebootPer(policy, cfg.Reboot.Window, o.dev.Offline(), w)
}

// rebootPer reboots into the armed slot as the policy says.
func rebootPer(policy config.Policy, window config.Window, offline bool, w io.Writer) error {
	switch {
	case policy == config.PolicyNextBoot:
		fmt.Fprintln(w, "the trial boot happens at the next boot")
		return nil
	case policy == config.PolicyWindow && !window.Contains(time.Now()):
		fmt.Fprintf(w, "the trial boot happens in the maintenance window %s (next at %s)\n", window, window.Next(time.Now()).Format(time.RFC3339))
		return nil
	case offline:
		fmt.Fprintln(w, "offline disk: boot it to try the new slot")
		return nil
	}
	fmt.Fprintln(w, "twinroot: rebooting into the trial slot")
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return nil
}
