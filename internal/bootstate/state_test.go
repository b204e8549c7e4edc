package bootstate

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/partition"
)

const a, b = partition.A, partition.B

func TestEnvRoundTrip(t *testing.T) {
	for _, s := range []State{
		Initial(),
		{Committed: b, Trial: a, Tries: 3, A: OK, B: OK},
		{Committed: a, A: OK, B: Bad},
		{Committed: a, A: OK, B: Writing},
	} {
		if diff := cmp.Diff(s, FromEnv(s.Env())); diff != "" {
			t.Errorf("FromEnv(Env()) (-want +got):\n%s", diff)
		}
	}
	// What grub.cfg does with a missing or damaged environment.
	if got, want := FromEnv(nil), (State{Committed: a}); got != want {
		t.Errorf("FromEnv(nil) = %+v, want %+v", got, want)
	}
	junk := grub.Env{{Name: grub.VarCommitted, Value: "c"}, {Name: grub.VarTrial, Value: "x"}, {Name: grub.VarTries, Value: "9"}}
	if got, want := FromEnv(junk), (State{Committed: a}); got != want {
		t.Errorf("FromEnv(junk) = %+v, want %+v", got, want)
	}
}

// TestLifecycle walks an update: prepare B, arm it, GRUB boots it, commit;
// then a failing trial of A falls back.
func TestLifecycle(t *testing.T) {
	s := Initial()
	must := func(n State, err error) State {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	s = must(s.Prepare(b, a))
	if slot, _ := s.GrubBoot(); slot != a {
		t.Fatalf("GrubBoot while writing B = %s", slot)
	}
	s = must(s.Arm(b, a, 1))
	slot, s := s.GrubBoot()
	if slot != b || s.Tries != 0 {
		t.Fatalf("GrubBoot after arm = %s tries %d, want b 0", slot, s.Tries)
	}
	if got := s.Assess(b); got != TrialRunning {
		t.Fatalf("Assess(b) = %s", got)
	}
	s = must(s.Commit(b))
	if want := (State{Committed: b, A: OK, B: OK}); s != want {
		t.Fatalf("after commit = %+v, want %+v", s, want)
	}
	if slot, n := s.GrubBoot(); slot != b || n != s {
		t.Fatalf("GrubBoot committed = %s %+v", slot, n)
	}
	// A trial of A that never comes up: two tries, then GRUB falls back.
	s = must(s.Prepare(a, b))
	s = must(s.Arm(a, b, 2))
	if got := s.Assess(b); got != TrialPending {
		t.Errorf("Assess before reboot = %s, want trial-pending", got)
	}
	for i := 0; i < 2; i++ {
		slot, s = s.GrubBoot()
		if slot != a {
			t.Fatalf("trial boot %d went to %s", i+1, slot)
		}
	}
	slot, s = s.GrubBoot()
	if slot != b {
		t.Fatalf("boot after tries used up went to %s, want b", slot)
	}
	if got := s.Assess(b); got != TrialFailed {
		t.Fatalf("Assess after fallback = %s, want trial-failed", got)
	}
	s = must(s.MarkBad(a))
	if want := (State{Committed: b, A: Bad, B: OK}); s != want {
		t.Fatalf("after mark bad = %+v, want %+v", s, want)
	}
	if _, err := s.Rollback(b); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("Rollback to a bad slot = %v, want ErrNotAllowed", err)
	}
}

func TestTransitionsRefused(t *testing.T) {
	s := State{Committed: a, Trial: b, Tries: 1, A: OK, B: OK}
	for name, f := range map[string]func() (State, error){
		"prepare running":       func() (State, error) { return s.Prepare(a, a) },
		"prepare committed":     func() (State, error) { return State{Committed: a, A: OK}.Prepare(a, b) },
		"arm running":           func() (State, error) { return s.Arm(a, a, 1) },
		"arm zero tries":        func() (State, error) { return s.Arm(b, a, 0) },
		"arm four tries":        func() (State, error) { return s.Arm(b, a, 4) },
		"commit not trial":      func() (State, error) { return s.Commit(a) },
		"commit unknown":        func() (State, error) { return s.Commit("") },
		"mark committed bad":    func() (State, error) { return s.MarkBad(a) },
		"rollback to empty":     func() (State, error) { return Initial().Rollback(a) },
		"rollback unknown":      func() (State, error) { return s.Rollback("") },
		"prepare invalid slot":  func() (State, error) { return s.Prepare("c", a) },
		"commit already commit": func() (State, error) { return State{Committed: a}.Commit(a) },
	} {
		if n, err := f(); err == nil {
			t.Errorf("%s: succeeded with %+v", name, n)
		}
	}
}

func TestRollback(t *testing.T) {
	for _, c := range []struct {
		name    string
		from    State
		running Slot
		want    State
	}{
		// A trial, pending or running, is refused: its slot holds the
		// update, never a previous version.
		{"pending trial", State{Committed: a, Trial: b, Tries: 1, A: OK, B: OK}, a, State{Committed: a, A: OK, B: Bad}},
		{"running trial", State{Committed: a, Trial: b, Tries: 0, A: OK, B: OK}, b, State{Committed: a, A: OK, B: Bad}},
		// With both committed before, rollback switches.
		{"to a", State{Committed: b, A: OK, B: OK}, b, State{Committed: a, A: OK, B: OK}},
		// Running the slot it goes back from, it is done already.
		{"done", State{Committed: a, A: OK, B: OK}, b, State{Committed: a, A: OK, B: OK}},
	} {
		s, err := c.from.Rollback(c.running)
		if err != nil || s != c.want {
			t.Errorf("%s: Rollback(%s) of %+v = %+v, %v; want %+v", c.name, c.running, c.from, s, err, c.want)
		}
		// A rollback run again (after a power cut, say) changes nothing
		// more: never a trial slot committed without its trial.
		if again, err := s.Rollback(c.running); err == nil && again != s {
			t.Errorf("%s: a second Rollback(%s) = %+v, after %+v", c.name, c.running, again, s)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	for in, want := range map[string]Slot{
		"BOOT_IMAGE=/boot/vmlinuz twinroot.slot=b ro quiet\n": b,
		"twinroot.slot=a": a,
	} {
		if got, err := ParseCmdline(in); err != nil || got != want {
			t.Errorf("ParseCmdline(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"ro quiet", "twinroot.slot=c", ""} {
		if _, err := ParseCmdline(in); !errors.Is(err, ErrNoRunning) {
			t.Errorf("ParseCmdline(%q) = %v, want ErrNoRunning", in, err)
		}
	}
}
