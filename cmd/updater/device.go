package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/agent"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/report"
	"github.com/twinroot/twinroot/internal/rollout"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/state"
)

// DefaultConfig is where the device config lives on a running system: the
// data partition, mounted at /data, as the installer seeds it.
const DefaultConfig = config.DataMount + "/" + config.DataPath

// deviceConfig is the --config and --state-dir pair of the commands that
// talk to the release channel.
type deviceConfig struct {
	path     string
	stateDir string
	flags    *pflag.FlagSet
}

func (d *deviceConfig) AddFlags(c *cobra.Command) {
	d.flags = c.Flags()
	d.flags.StringVar(&d.path, "config", DefaultConfig, "device config (device.yaml); with --disk FILE, the one on that disk's data partition")
	d.flags.StringVar(&d.stateDir, "state-dir", "", "updater state directory (default: state_dir of the config, on the data partition of the disk acted on)")
}

// given reports whether the user named the config or the state directory.
func (d *deviceConfig) given() bool { return d.flags.Changed("config") || d.flags.Changed("state-dir") }

// device is what a device-side command acts on: a disk, its running slot,
// and (when the command asks) its device config and updater state.
type device struct {
	disk    *bootstate.Disk
	running bootstate.Slot
	offline bool
	// cfg is nil when the command did not ask for it or it did not load
	// (cfgErr says why: a missing file wraps os.ErrNotExist).
	cfg     *config.Config
	cfgErr  error
	cfgPath string
	state   state.Store
	closers []func() error
}

// openDevice is the one preamble of the device-side commands (restic's
// openWithReadLock): it checks -o, opens the disk and tells the running
// slot and, with dc, loads device.yaml and names the state directory.
//
// State lives with the disk it describes: acting on a disk image file
// with neither --config nor --state-dir, both are that disk's own, on its
// data partition (mounted for the command), never the host's. Close
// releases everything.
func openDevice(out cli.Output, dev cli.Device, dc *deviceConfig) (*device, error) {
	if err := out.Validate(); err != nil {
		return nil, err
	}
	disk, running, err := dev.Open()
	if err != nil {
		return nil, err
	}
	d := &device{disk: disk, running: running, offline: dev.Offline(), closers: []func() error{disk.Close}}
	if dc == nil {
		return d, nil
	}
	d.cfgPath = dc.path
	root := ""
	if fi, err := disk.File.Stat(); err == nil && fi.Mode().IsRegular() && !dc.given() {
		mnt, unmount, err := partition.MountData(disk.File.Name(), disk.Layout)
		if err != nil {
			d.cfgErr = fmt.Errorf("%w; or give --config and --state-dir", err)
			return d, nil
		}
		d.closers = append(d.closers, unmount)
		root, d.cfgPath = mnt, filepath.Join(mnt, config.DataPath)
	}
	d.cfg, d.cfgErr = config.Load(d.cfgPath)
	if d.cfgErr != nil {
		d.cfg = nil
		return d, nil
	}
	dir := d.cfg.StateDir
	if dc.stateDir != "" {
		dir = dc.stateDir
	} else if root != "" {
		rel, ok := strings.CutPrefix(dir, config.DataMount+"/")
		if !ok {
			d.cfg, d.cfgErr = nil, refusal.Errorf("state_dir %s of %s is not on the data partition (%s/...); give --state-dir", dir, disk.File.Name(), config.DataMount)
			return d, nil
		}
		dir = filepath.Join(root, rel)
	}
	d.state = state.Store{Dir: dir}
	return d, nil
}

// Close closes the disk and unmounts what openDevice mounted.
func (d *device) Close() error {
	var errs []error
	for i := len(d.closers) - 1; i >= 0; i-- {
		errs = append(errs, d.closers[i]())
	}
	d.closers = nil
	return errors.Join(errs...)
}

// config returns the device config, or why there is none.
func (d *device) config() (*config.Config, error) { return d.cfg, d.cfgErr }

// source opens the config's source, or from instead: a build output
// directory, the directory of a store, or a source URL.
func (d *device) source(ctx context.Context, from string) (source.Source, error) {
	opts := source.Options{
		Endpoint: d.cfg.Endpoint, Region: d.cfg.Region,
		AccessKey: d.cfg.Credentials.AccessKeyID.Reveal(), SecretKey: d.cfg.Credentials.SecretAccessKey.Reveal(),
		SessionToken: d.cfg.Credentials.SessionToken.Reveal(),
		// The agent retries with one policy of its own (package fetch):
		// one request per call, or the SDK's retries multiply its tries.
		MaxAttempts: 1,
	}
	if from == "" {
		return source.Open(ctx, d.cfg.Source, opts)
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
	src, err := source.Open(ctx, from, opts)
	if err != nil {
		return nil, cli.UsageError{Err: fmt.Errorf("--from %s: %w", from, err)}
	}
	return src, nil
}

// checker reads what the running slot trusts and checks src.
func (d *device) checker(src source.Source) (*agent.Checker, error) {
	p := d.disk.Layout.Slot(d.running)
	rel, err := image.ReadSlot(d.disk.File, p.Start, p.Size)
	if err != nil {
		return nil, fmt.Errorf("running slot %s: %w", d.running, err)
	}
	ck := &agent.Checker{Source: src, Channel: d.cfg.Channel, Running: rel, SlotSize: d.disk.Layout.Slot(d.running.Other()).Size, State: d.state}
	ck.Place, ck.PlaceErr = rollout.PlaceOf(d.cfg.Rollout.Pin, d.machineIDFile())
	return ck, nil
}

// machineIDFile is where the device's machine id is, for its place in
// staged rollouts and its id in reports; "" for a disk that is not the
// running system's, which has no machine id here (the host's is another
// machine's): it goes when a rollout is complete, and reports under a
// random id kept in its own state directory.
func (d *device) machineIDFile() string {
	if d.offline {
		return ""
	}
	return d.cfg.Rollout.MachineIDFile
}

// reporter is the device's reporter (package report), nil without a
// report section. A reporter that cannot be set up is logged and left out:
// reports never stand in an update's way.
func (d *device) reporter(ctx context.Context, log *slog.Logger) *report.Reporter {
	r := d.cfg.Report
	if r.To == "" {
		return nil
	}
	place, _ := rollout.PlaceOf(d.cfg.Rollout.Pin, d.machineIDFile())
	id, err := report.DeviceID(d.machineIDFile(), d.state.Dir)
	if err != nil {
		log.Warn("no reports: device id: " + err.Error())
		return nil
	}
	st, err := source.OpenStore(ctx, r.To, source.Options{Endpoint: cmp.Or(r.Endpoint, d.cfg.Endpoint), Region: cmp.Or(r.Region, d.cfg.Region),
		AccessKey: string(r.Credentials.AccessKeyID), SecretKey: string(r.Credentials.SecretAccessKey), SessionToken: string(r.Credentials.SessionToken)})
	if err != nil {
		log.Warn("no reports: " + err.Error())
		return nil
	}
	return &report.Reporter{Store: st, Device: id, Channel: d.cfg.Channel, Bucket: place.Bucket, Log: log}
}
