package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/agent"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/state"
)

// DefaultConfig is where the device config lives on a running system: the
// data partition, mounted at /data, as the installer seeds it.
const DefaultConfig = "/data/" + config.DataPath

// deviceConfig is the --config and --state-dir pair of the commands that
// talk to the release channel.
type deviceConfig struct {
	path     string
	stateDir string
}

func (d *deviceConfig) AddFlags(c *cobra.Command) {
	c.Flags().StringVar(&d.path, "config", DefaultConfig, "device config (device.yaml)")
	c.Flags().StringVar(&d.stateDir, "state-dir", "", "updater state directory (default: state_dir of the config)")
}

func (d *deviceConfig) load() (*config.Config, state.Store, error) {
	cfg, err := config.Load(d.path)
	if err != nil {
		return nil, state.Store{}, err
	}
	dir := cfg.StateDir
	if d.stateDir != "" {
		dir = d.stateDir
	}
	return cfg, state.Store{Dir: dir}, nil
}

func sourceOptions(cfg *config.Config) source.Options {
	return source.Options{
		Endpoint: cfg.Endpoint, Region: cfg.Region,
		AccessKey: cfg.Credentials.AccessKeyID.Reveal(), SecretKey: cfg.Credentials.SecretAccessKey.Reveal(),
		SessionToken: cfg.Credentials.SessionToken.Reveal(),
	}
}

// openSource opens the config's source, or from instead: a build output
// directory, a directory or URL of a store.
func openSource(ctx context.Context, cfg *config.Config, from string) (source.Source, error) {
	if from == "" {
		return source.Open(ctx, cfg.Source, sourceOptions(cfg))
	}
	if _, err := os.Stat(filepath.Join(from, release.ManifestFile)); err == nil {
		return release.DirSource(from)
	}
	if fi, err := os.Stat(from); err == nil && fi.IsDir() {
		abs, err := filepath.Abs(from)
		if err != nil {
			return nil, err
		}
		from = "file://" + abs
	}
	src, err := source.Open(ctx, from, sourceOptions(cfg))
	if err != nil {
		return nil, cli.UsageError{Err: fmt.Errorf("--from %s: %w", from, err)}
	}
	return src, nil
}

// newChecker reads what the running slot trusts.
func newChecker(d *bootstate.Disk, running bootstate.Slot, cfg *config.Config, st state.Store, src source.Source) (*agent.Checker, error) {
	p := d.Layout.Slot(running)
	rel, err := image.ReadSlot(d.File, p.Start, p.Size)
	if err != nil {
		return nil, fmt.Errorf("running slot %s: %w", running, err)
	}
	return &agent.Checker{Source: src, Channel: cfg.Channel, Running: rel, SlotSize: d.Layout.Slot(running.Other()).Size, State: st}, nil
}

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
update applies. A refusal is reported with the rule that failed.

Exit 0 when an update is available or the device is up to date, 3 when
the channel's release is refused.

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
	if err := o.out.Validate(); err != nil {
		return err
	}
	cfg, st, err := o.cfg.load()
	if err != nil {
		return err
	}
	d, running, err := o.dev.Open()
	if err != nil {
		return err
	}
	defer d.Close()
	src, err := openSource(c.Context(), cfg, "")
	if err != nil {
		return err
	}
	ck, err := newChecker(d, running, cfg, st, src)
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
		return cli.Refused(r.Reason)
	}
	return nil
}
