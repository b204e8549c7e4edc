package agent

import (
	"context"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/health"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/testdisk"
)

const a, b = partition.A, partition.B

func TestBoot(t *testing.T) {
	pass := health.Gate{Commands: []string{"true"}, Deadline: time.Second}
	fail := health.Gate{Commands: []string{"false"}, Deadline: 200 * time.Millisecond, Interval: 50 * time.Millisecond}
	for _, tc := range []struct {
		name        string
		state       bootstate.State
		running     bootstate.Slot
		gate        health.Gate
		wantOutcome string
		wantAfter   bootstate.State
		wantReboot  bool
	}{
		{"committed", bootstate.Initial(), a, pass, OutcomeNothing, bootstate.Initial(), false},
		{"trial passes", bootstate.State{Committed: a, Trial: b, A: "ok", B: "ok"}, b, pass,
			OutcomeCommitted, bootstate.State{Committed: b, A: "ok", B: "ok"}, false},
		{"trial fails gate", bootstate.State{Committed: a, Trial: b, A: "ok", B: "ok"}, b, fail,
			OutcomeMarkedBad, bootstate.State{Committed: a, A: "ok", B: "bad"}, true},
		{"grub fell back", bootstate.State{Committed: a, Trial: b, A: "ok", B: "ok"}, a, fail,
			OutcomeFellBack, bootstate.State{Committed: a, A: "ok", B: "bad"}, false},
		{"trial pending", bootstate.State{Committed: a, Trial: b, Tries: 1, A: "ok", B: "ok"}, a, fail,
			OutcomePending, bootstate.State{Committed: a, Trial: b, Tries: 1, A: "ok", B: "ok"}, false},
		{"unknown slot", bootstate.Initial(), b, fail, OutcomeUnexpected, bootstate.Initial(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := bootstate.OpenDisk(testdisk.New(t, tc.state.Env()))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			bt := Boot{Disk: d, Running: tc.running, Gate: tc.gate}
			r, err := bt.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			rebooted := r.Reboot
			if r.Outcome != tc.wantOutcome || r.After != tc.wantAfter || rebooted != tc.wantReboot {
				t.Errorf("Run = %s %+v reboot %v; want %s %+v reboot %v (%s)", r.Outcome, r.After, rebooted, tc.wantOutcome, tc.wantAfter, tc.wantReboot, r.Message)
			}
			if got, _ := d.Load(); got != tc.wantAfter {
				t.Errorf("state on disk = %+v, want %+v", got, tc.wantAfter)
			}
		})
	}
}
