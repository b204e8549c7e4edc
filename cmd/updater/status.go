package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/fetch"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/state"
)

type statusOptions struct {
	dev cli.Device
	cfg deviceConfig
	out cli.Output
}

func newStatusCmd() *cobra.Command {
	var o statusOptions
	c := &cobra.Command{
		Use:   "status",
		Short: "Show the running, committed and trial slots and each slot's state and version",
		Long: `status shows the boot state (committed slot, trial and boots left, the slot
GRUB boots next), each slot's state, version and serial, and, from the
updater state directory, the last check (or why the channel could not be
read), for the version the channel offers why it could not be taken (the
last failure or refusal, in one line, and in how many rounds), the
versions recorded bad and the progress of an apply in flight.

` + cli.ExitCodesHelp,
		Example: `  updater status
  updater status -o json --disk disk.img --running-slot a`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runStatus(o, c.OutOrStdout()) },
	}
	o.dev.AddFlags(c.Flags())
	o.cfg.AddFlags(c)
	o.out.AddFlags(c.Flags())
	return c
}

type slotStatus struct {
	State     bootstate.SlotState `json:"state"`
	Version   string              `json:"version,omitempty"`
	Serial    uint64              `json:"serial,omitempty"`
	Running   bool                `json:"running"`
	Committed bool                `json:"committed"`
	Trial     bool                `json:"trial"`
}

type status struct {
	Disk      string                `json:"disk"`
	Running   bootstate.Slot        `json:"running"`
	Committed bootstate.Slot        `json:"committed"`
	Trial     bootstate.Slot        `json:"trial,omitempty"`
	Tries     int                   `json:"trial_boots_left"`
	Phase     bootstate.Phase       `json:"phase"`
	Slots     map[string]slotStatus `json:"slots"`
	NextBoot  bootstate.Slot        `json:"next_boot"`
	// From the updater state, when the device config or --state-dir names it.
	LastCheck     *state.Check `json:"last_check,omitempty"`
	BadVersions   []string     `json:"bad_versions,omitempty"`
	HighestSerial uint64       `json:"highest_serial,omitempty"`
	Apply         *applyStatus `json:"apply,omitempty"`
	// Failures says, by version, why the channel's version could not be
	// taken (state.Failure).
	Failures map[string]state.Failure `json:"failures,omitempty"`
}

// applyStatus is the progress of an apply, from its journal.
type applyStatus struct {
	Slot    bootstate.Slot `json:"slot"`
	Done    int64          `json:"bytes_done"`
	Total   int64          `json:"bytes_total"`
	Percent float64        `json:"percent"`
}

func runStatus(o statusOptions, w io.Writer) error {
	dev, err := openDevice(o.out, o.dev, &o.cfg)
	if err != nil {
		return err
	}
	defer dev.Close()
	d, running := dev.disk, dev.running
	st, err := d.Load()
	if err != nil {
		return err
	}
	next, _ := st.GrubBoot()
	s := status{Disk: d.File.Name(), Running: running, Committed: st.Committed, Trial: st.Trial, Tries: st.Tries,
		Phase: st.Assess(running), Slots: map[string]slotStatus{}, NextBoot: next}
	for _, slot := range []bootstate.Slot{partition.A, partition.B} {
		ss := slotStatus{State: st.Of(slot), Running: slot == running, Committed: slot == st.Committed, Trial: slot == st.Trial}
		if ss.State != bootstate.Empty && ss.State != bootstate.Writing {
			p := d.Layout.Slot(slot)
			if img, err := image.ReadSlot(d.File, p.Start, p.Size); err == nil {
				ss.Version, ss.Serial = img.Version, img.Serial
			}
		}
		s.Slots[string(slot)] = ss
	}
	if dir := cmp.Or(o.cfg.stateDir, dev.state.Dir); dir != "" {
		addState(&s, state.Store{Dir: dir}, d.Layout)
	}
	if o.out.JSON() {
		return cli.WriteJSON(w, s)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "disk\t%s\n", s.Disk)
	fmt.Fprintf(tw, "running\tslot %s\n", s.Running)
	fmt.Fprintf(tw, "committed\tslot %s\n", s.Committed)
	if s.Trial != "" {
		fmt.Fprintf(tw, "trial\tslot %s, %d boot(s) left\n", s.Trial, s.Tries)
	} else {
		fmt.Fprintf(tw, "trial\tnone\n")
	}
	fmt.Fprintf(tw, "phase\t%s\n", s.Phase)
	fmt.Fprintf(tw, "next boot\tslot %s\n", s.NextBoot)
	for _, slot := range []string{"a", "b"} {
		ss := s.Slots[slot]
		v := ss.Version
		if v == "" {
			v = "-"
		}
		var tags []string
		for _, t := range []struct {
			on   bool
			name string
		}{{ss.Running, "running"}, {ss.Committed, "committed"}, {ss.Trial, "trial"}} {
			if t.on {
				tags = append(tags, t.name)
			}
		}
		fmt.Fprintf(tw, "slot %s\t%s\tversion %s\t%v\n", slot, ss.State, v, tags)
	}
	if s.LastCheck != nil {
		fmt.Fprintf(tw, "last check\t%s\t%s\t%s\n", s.LastCheck.Time.Format(time.RFC3339), s.LastCheck.Outcome, s.LastCheck.Reason)
	}
	for _, v := range slices.Sorted(maps.Keys(s.Failures)) {
		f := s.Failures[v]
		what := "failed"
		if f.Refused {
			what = "refused"
		}
		rounds := "1 round"
		if f.Rounds != 1 {
			rounds = fmt.Sprintf("%d rounds since %s", f.Rounds, f.First.Format(time.RFC3339))
		}
		fmt.Fprintf(tw, "version %s\t%s\t%s\t%s\t%s\n", v, what, f.Time.Format(time.RFC3339), rounds, f.Reason)
	}
	if len(s.BadVersions) > 0 {
		fmt.Fprintf(tw, "bad versions\t%s\n", strings.Join(s.BadVersions, ", "))
	}
	if a := s.Apply; a != nil {
		fmt.Fprintf(tw, "apply\tslot %s %.0f%% (%d of %d bytes)\n", a.Slot, a.Percent, a.Done, a.Total)
	}
	return tw.Flush()
}

// addState adds what the updater state and the apply journal say, when
// they can be found; status works without them.
func addState(s *status, store state.Store, l partition.Layout) {
	st, err := store.Load()
	if err != nil {
		return
	}
	s.LastCheck, s.BadVersions, s.HighestSerial, s.Failures = st.LastCheck, st.BadVersions, st.HighestSerial, st.Failures
	j, err := fetch.FileJournal{Path: store.Path(state.JournalFile)}.Load()
	if err != nil || j.Size == 0 {
		return
	}
	slot := partition.A
	if j.Target == l.B.Start {
		slot = partition.B
	}
	if s.Slots[string(slot)].State != bootstate.Writing {
		return // an apply that finished, or one the slot was rewritten after
	}
	// Every chunk written, the slot still writing: the last checks before
	// the arm (or a run cut there) show as 100%.
	s.Apply = &applyStatus{Slot: slot, Done: j.Offset, Total: j.Size, Percent: 100 * float64(j.Offset) / float64(j.Size)}
}
