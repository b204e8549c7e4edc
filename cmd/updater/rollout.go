package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/fleet"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/rollout"
	"github.com/twinroot/twinroot/internal/source"
)

type rolloutOptions struct {
	channel  string
	keyFiles []string
	pubs     []string
	expires  time.Duration
	store    storeFlags
	out      cli.Output
}

func newRolloutCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "rollout pause|resume|status|watch URL --channel C",
		Short: "Pause, resume or show the staged rollout of a channel's latest release",
		Long: `rollout acts on the staged rollout (updater publish --rollout) of the
channel's latest release in the store at URL, with no server: pause and
resume sign latest.json again with the rollout changed, and replace it only
if nobody changed it since it was read.

` + cli.ExitCodesHelp,
		Example: `  updater rollout status s3://releases/fleet --channel stable
  updater rollout watch s3://releases/fleet --channel stable --key release.key --max-failure 5%
  updater rollout pause s3://releases/fleet --channel stable --key release.key
  updater rollout resume s3://releases/fleet --channel stable --key release.key`,
		Args: cli.NoArgs,
	}
	c.AddCommand(
		newRestageCmd("pause", "Pause the rollout: no device that has not started the release starts it",
			`pause stops the staged rollout of the channel's latest release where it
is: a device that has not begun writing the release does not start it,
whatever its place in the fleet; one that has begun finishes. A release
published without --rollout can be paused too (it had reached every
device), which stops the devices that have not taken it yet.`,
			func(r manifest.Rollout, now time.Time) manifest.Rollout { return rollout.Pause(r, now) }),
		newRestageCmd("resume", "Resume a paused rollout from the share it had reached",
			`resume goes on with a paused rollout from the share of devices it had
reached when it was paused: its start moves later by the time it was
paused.`,
			func(r manifest.Rollout, now time.Time) manifest.Rollout { return rollout.Resume(r, now) }),
		newRolloutStatusCmd(),
		newRolloutWatchCmd(),
	)
	return c
}

// newRestageCmd is pause or resume: change makes the new rollout.
func newRestageCmd(name, short, long string, change func(manifest.Rollout, time.Time) manifest.Rollout) *cobra.Command {
	o := rolloutOptions{expires: 720 * time.Hour}
	c := &cobra.Command{
		Use:   name + " URL --channel C --key NAME.key",
		Short: short,
		Long: long + `

The key must have signed the latest.json in the store, or --pub names the
key that did (both are release keys the devices trust): nothing the store
holds is signed again unchecked. latest.json gets a new expiry, --expires
from now.

` + cli.ExitCodesHelp,
		Example: fmt.Sprintf(`  updater rollout %s s3://releases/fleet --channel stable --key release.key
  updater rollout %s s3://rel --channel beta --key ops.key --pub ci.pub --endpoint http://127.0.0.1:9000`, name, name),
		Args: oneURL,
		RunE: func(c *cobra.Command, args []string) error {
			return runRestage(c, o, args[0], name, change, c.OutOrStdout())
		},
	}
	f := c.Flags()
	f.StringVar(&o.channel, "channel", "", "release channel (required)")
	f.StringArrayVar(&o.keyFiles, "key", nil, "private key NAME.key (repeatable; required)")
	f.StringArrayVar(&o.pubs, "pub", nil, "public key NAME.pub that may have signed latest.json, beside the --key ones (repeatable)")
	f.DurationVar(&o.expires, "expires", o.expires, "time from now until devices refuse the manifest")
	o.store.AddFlags(c)
	o.out.AddFlags(f)
	c.MarkFlagRequired("channel")
	c.MarkFlagRequired("key")
	return c
}

func runRestage(c *cobra.Command, o rolloutOptions, url, verb string, change func(manifest.Rollout, time.Time) manifest.Rollout, w io.Writer) error {
	if err := o.out.Validate(); err != nil {
		return err
	}
	signers, err := loadSigners(o.keyFiles, "nothing changed")
	if err != nil {
		return err
	}
	trusted, err := loadPublics(o.pubs)
	if err != nil {
		return err
	}
	st, err := source.OpenStore(c.Context(), url, o.store.opts)
	if err != nil {
		return err
	}
	now := time.Now()
	m, err := release.Restage(c.Context(), st, release.StageOptions{Channel: o.channel, Signers: signers, Trusted: trusted, TTL: o.expires, Now: now},
		func(r manifest.Rollout) (manifest.Rollout, error) {
			switch {
			case verb == "pause" && r.PausedAt != nil:
				return r, refusal.Errorf("the rollout of %s is already paused (since %s)", o.channel, r.PausedAt.Format(time.RFC3339))
			case verb == "resume" && r.PausedAt == nil:
				return r, refusal.Errorf("the rollout of %s is not paused", o.channel)
			}
			return change(r, now), nil
		})
	if err != nil {
		return err
	}
	return writeRollout(w, o.out, m, now)
}

func newRolloutStatusCmd() *cobra.Command {
	var o rolloutOptions
	c := &cobra.Command{
		Use:   "status URL --channel C",
		Short: "Show the staged rollout of a channel's latest release and the share it has reached",
		Long: `status reads the channel's latest.json and shows its release's staged
rollout: when it started, the share of devices it has reached now, when it
reaches every device, and whether it is paused. With --pub, the signature
is checked first.

` + cli.ExitCodesHelp,
		Example: `  updater rollout status s3://releases/fleet --channel stable
  updater rollout status https://cdn.example.com/fleet --channel stable --pub release.pub -o json`,
		Args: oneURL,
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.out.Validate(); err != nil {
				return err
			}
			trusted, err := loadPublics(o.pubs)
			if err != nil {
				return err
			}
			src, err := source.Open(c.Context(), args[0], o.store.opts)
			if err != nil {
				return err
			}
			now := time.Now()
			m, _, _, err := release.Latest(c.Context(), src, o.channel, trusted, now)
			if err != nil {
				return err
			}
			return writeRollout(c.OutOrStdout(), o.out, m, now)
		},
	}
	f := c.Flags()
	f.StringVar(&o.channel, "channel", "", "release channel (required)")
	f.StringArrayVar(&o.pubs, "pub", nil, "trusted public key NAME.pub: check latest.json's signature (repeatable)")
	o.store.AddFlags(c)
	o.out.AddFlags(f)
	c.MarkFlagRequired("channel")
	return c
}

// rolloutStatus is what rollout's commands print: the release and its
// rollout now.
type rolloutStatus struct {
	Channel  string            `json:"channel"`
	Version  string            `json:"version"`
	Serial   uint64            `json:"serial"`
	Expires  time.Time         `json:"expires"`
	Rollout  *manifest.Rollout `json:"rollout,omitempty"`
	Share    float64           `json:"share"` // reached now, 0 to 1; -1: not started
	Complete time.Time         `json:"complete,omitzero"`
}

func writeRollout(w io.Writer, out cli.Output, m *manifest.Manifest, now time.Time) error {
	s := rolloutStatus{Channel: m.Channel, Version: m.Version, Serial: m.Serial, Expires: m.Expires, Rollout: m.Rollout, Share: rollout.Share(m.Rollout, now)}
	if r := m.Rollout; r != nil && r.PausedAt == nil {
		s.Complete = r.Start.Add(time.Duration(r.Duration))
	}
	if out.JSON() {
		return cli.WriteJSON(w, s)
	}
	fmt.Fprintf(w, "%s %s (serial %d), expires %s\n", m.Channel, m.Version, m.Serial, m.Expires.Format(time.RFC3339))
	r := m.Rollout
	switch {
	case r == nil:
		fmt.Fprintln(w, "rollout: none, every device takes it")
	case r.PausedAt != nil:
		fmt.Fprintf(w, "rollout: paused at %s, at %.1f %% of devices; started %s\n", r.PausedAt.Format(time.RFC3339), s.Share*100, r.Start.Format(time.RFC3339))
	case s.Share < 0:
		fmt.Fprintf(w, "rollout: starts at %s (%g %% of devices at once), every device at %s\n", r.Start.Format(time.RFC3339), r.StartPercent, s.Complete.Format(time.RFC3339))
	default:
		fmt.Fprintf(w, "rollout: %.1f %% of devices now; started %s, every device at %s\n", s.Share*100, r.Start.Format(time.RFC3339), s.Complete.Format(time.RFC3339))
	}
	return nil
}

// loadSigners loads the private key files at paths; an error ends with
// what was left undone.
func loadSigners(paths []string, undone string) ([]*keys.PrivateKey, error) {
	var ks []*keys.PrivateKey
	for _, p := range paths {
		k, err := keys.LoadPrivate(p)
		if err != nil {
			return nil, fmt.Errorf("%w; %s", err, undone)
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// loadPublics loads the public key files at paths.
func loadPublics(paths []string) ([]keys.PublicKey, error) {
	var ks []keys.PublicKey
	for _, p := range paths {
		k, err := keys.LoadPublic(p)
		if err != nil {
			return nil, err
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// oneURL takes exactly one argument, the store's URL.
func oneURL(_ *cobra.Command, args []string) error {
	if len(args) != 1 {
		return cli.UsageError{Err: fmt.Errorf("want one URL, got %d arguments", len(args))}
	}
	return nil
}

func newRolloutWatchCmd() *cobra.Command {
	var (
		r           reportsFlags
		keyFiles    []string
		maxFailure  string
		minOutcomes int
		every       time.Duration
		expires     = 720 * time.Hour
		out         cli.Output
	)
	c := &cobra.Command{
		Use:   "watch URL --channel C --key NAME.key --max-failure 5%",
		Short: "Pause the rollout when too many of the devices that tried the release failed",
		Long: `watch reads the device reports of the channel's latest release (see
updater fleet report) and pauses its rollout, as updater rollout pause
does, when the failure share is above --max-failure: the devices that
failed to apply it or rolled back from its trial, of those that reached an
outcome (committed, failed or rolled back; a trial still running is not
one yet). It judges only once --min-outcomes devices reached an outcome,
so one early failure does not halt a fleet. A rollout paused already is
left as it is; a release published meanwhile is not paused.

Run it after every publish in CI, or from cron; --every runs it in a loop
until it is stopped. It prints its verdict each time (-o json for
scripts), and exits 0 whether or not it paused.

` + cli.ExitCodesHelp,
		Example: `  updater rollout watch s3://releases/fleet --channel stable --key release.key --max-failure 5%
  updater rollout watch s3://rel --channel stable --key ops.key --pub ci.pub --max-failure 2% --min-outcomes 50 --every 5m`,
		Args: oneURL,
		RunE: func(c *cobra.Command, args []string) error {
			if err := out.Validate(); err != nil {
				return err
			}
			p, err := percent("max-failure", maxFailure)
			if err != nil {
				return err
			}
			if minOutcomes < 1 {
				return cli.UsageError{Err: fmt.Errorf("--min-outcomes %d: want 1 or more", minOutcomes)}
			}
			signers, err := loadSigners(keyFiles, "nothing changed")
			if err != nil {
				return err
			}
			st, err := source.OpenStore(c.Context(), args[0], r.store.opts)
			if err != nil {
				return err
			}
			o, err := r.options(c, args[0], st)
			if err != nil {
				return err
			}
			w := &fleet.Watch{Summary: o, Store: st, Rule: fleet.Rule{MaxFailure: p / 100, MinOutcomes: minOutcomes},
				Stage: release.StageOptions{Signers: signers, Trusted: o.Trusted, TTL: expires}}
			for {
				v, _, err := w.Once(c.Context())
				if err == nil {
					err = writeVerdict(c.OutOrStdout(), out, v)
				}
				if every <= 0 {
					return err
				}
				if err != nil {
					fmt.Fprintf(c.ErrOrStderr(), "watch: %v\n", err)
				}
				select {
				case <-c.Context().Done():
					return nil
				case <-time.After(every):
				}
			}
		},
	}
	r.AddFlags(c)
	f := c.Flags()
	f.StringArrayVar(&keyFiles, "key", nil, "private key NAME.key that signs the pause (repeatable; required)")
	f.StringVar(&maxFailure, "max-failure", "", "the failure share above which the rollout is paused, like 5% (required)")
	f.IntVar(&minOutcomes, "min-outcomes", 20, "devices that must have reached an outcome before the release is judged")
	f.DurationVar(&every, "every", 0, "run again after this long, until stopped (0: once)")
	f.DurationVar(&expires, "expires", expires, "when it pauses: time from now until devices refuse the manifest")
	out.AddFlags(f)
	c.MarkFlagRequired("key")
	c.MarkFlagRequired("max-failure")
	return c
}

// writeVerdict prints one judgement of a watch.
func writeVerdict(w io.Writer, out cli.Output, v fleet.Verdict) error {
	if out.JSON() {
		return cli.WriteJSON(w, v)
	}
	switch {
	case v.Halt && v.Paused:
		_, err := fmt.Fprintf(w, "%s: %s: rollout paused\n", v.Version, v.Reason)
		return err
	case v.Paused:
		_, err := fmt.Fprintf(w, "%s: %s; the rollout is paused\n", v.Version, v.Reason)
		return err
	}
	_, err := fmt.Fprintf(w, "%s: %s\n", v.Version, v.Reason)
	return err
}
