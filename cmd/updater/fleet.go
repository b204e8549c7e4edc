package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/fleet"
	"github.com/twinroot/twinroot/internal/source"
)

func newFleetCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "fleet report URL --channel C",
		Short: "Summarise what a channel's devices reported",
		Long: `fleet reads the reports the devices of a channel write to the store
(device.yaml report:) and summarises them with no server.

` + cli.ExitCodesHelp,
		Example: `  updater fleet report s3://releases/fleet --channel stable
  updater fleet report s3://releases/fleet --channel stable -o html > fleet.html`,
		Args: cli.NoArgs,
	}
	c.AddCommand(newFleetReportCmd())
	return c
}

// reportsFlags name where the devices report and which keys signed the
// channel.
type reportsFlags struct {
	channel string
	reports string
	pubs    []string
	store   storeFlags
}

func (r *reportsFlags) AddFlags(c *cobra.Command) {
	f := c.Flags()
	f.StringVar(&r.channel, "channel", "", "release channel (required)")
	f.StringVar(&r.reports, "reports", "", "where the devices report (device.yaml report.to), if not URL")
	f.StringArrayVar(&r.pubs, "pub", nil, "trusted public key NAME.pub: check latest.json's signature (repeatable)")
	r.store.AddFlags(c)
	c.MarkFlagRequired("channel")
}

// options reads the releases from releases (opened from URL) and opens
// the reports' store: releases itself when --reports is not set.
func (r *reportsFlags) options(c *cobra.Command, url string, releases source.Source) (fleet.Options, error) {
	o := fleet.Options{Channel: r.channel, Releases: releases}
	trusted, err := loadPublics(r.pubs)
	if err != nil {
		return o, err
	}
	o.Trusted = trusted
	if st, ok := releases.(source.Store); ok && r.reports == "" {
		o.Reports = st
		return o, nil
	}
	reports := r.reports
	if reports == "" {
		reports = url
	}
	o.Reports, err = source.OpenStore(c.Context(), reports, r.store.opts)
	return o, err
}

func newFleetReportCmd() *cobra.Command {
	var r reportsFlags
	out := cli.Output{Also: []string{"html"}}
	c := &cobra.Command{
		Use:   "report URL --channel C",
		Short: "Devices per version, commits, failures by reason, silent rollbacks and the rollout's progress",
		Long: `report summarises the channel's device reports beside its latest release:
the devices per version they run, and for each release the devices that
tried it, committed it, are in its trial, failed to apply it or rolled
back from it (silent rollbacks are trials that never reached their health
check: a panic, a hang, a kernel that did not boot), the reasons, and the
share of the fleet its staged rollout has reached.

Each device counts once per release: its latest report. -o html writes a
page of bars a person reads at a glance, with no script and nothing
loaded from elsewhere; -o json is for scripts. The reports may live in
another store than the releases (--reports, with read access).

` + cli.ExitCodesHelp,
		Example: `  updater fleet report s3://releases/fleet --channel stable
  updater fleet report s3://releases/fleet --channel stable --reports s3://fleet-reports -o html > fleet.html`,
		Args: oneURL,
		RunE: func(c *cobra.Command, args []string) error {
			if err := out.Validate(); err != nil {
				return err
			}
			releases, err := source.Open(c.Context(), args[0], r.store.opts)
			if err != nil {
				return err
			}
			o, err := r.options(c, args[0], releases)
			if err != nil {
				return err
			}
			s, err := fleet.Summarise(c.Context(), o)
			if err != nil {
				return err
			}
			switch out.Format {
			case "json":
				return cli.WriteJSON(c.OutOrStdout(), s)
			case "html":
				return fleet.WriteHTML(c.OutOrStdout(), s)
			}
			writeSummary(c.OutOrStdout(), s)
			return nil
		},
	}
	r.AddFlags(c)
	out.AddFlags(c.Flags())
	return c
}

// writeSummary writes s for a person.
func writeSummary(w io.Writer, s fleet.Summary) {
	fmt.Fprintf(w, "channel %s: %d devices reported (%s)", s.Channel, s.Devices, s.Time.Format(time.RFC3339))
	if s.Unreadable > 0 {
		fmt.Fprintf(w, "; %d report objects unreadable", s.Unreadable)
	}
	fmt.Fprintln(w)
	switch l := s.Latest; {
	case l == nil:
		fmt.Fprintf(w, "latest release: %s\n", s.LatestError)
	case l.Rollout == nil:
		fmt.Fprintf(w, "latest release: %s (serial %d), no staged rollout\n", l.Version, l.Serial)
	case l.Paused:
		fmt.Fprintf(w, "latest release: %s (serial %d), rollout paused at %.1f %% of devices\n", l.Version, l.Serial, l.Share*100)
	case l.Share < 0:
		fmt.Fprintf(w, "latest release: %s (serial %d), rollout starts %s\n", l.Version, l.Serial, l.Rollout.Start.Format(time.RFC3339))
	default:
		fmt.Fprintf(w, "latest release: %s (serial %d), rollout at %.1f %% of devices\n", l.Version, l.Serial, l.Share*100)
	}
	if len(s.Running) > 0 {
		var parts []string
		for _, c := range s.Running {
			parts = append(parts, fmt.Sprintf("%s %d", c.Version, c.Devices))
		}
		fmt.Fprintf(w, "running: %s\n", strings.Join(parts, ", "))
	}
	for _, r := range s.Releases {
		fmt.Fprintf(w, "%s (serial %d): %d tried, %d committed, %d in trial, %d failed, %d rolled back (%d silent); failure share %.1f %%\n",
			r.Version, r.Serial, r.Tried, r.Committed, r.InTrial, r.Failed, r.RolledBack, r.Silent, r.Failure*100)
		for _, c := range r.Reasons {
			fmt.Fprintf(w, "  %5d  %-11s  %s\n", c.Devices, c.Event, c.Reason)
		}
	}
}
