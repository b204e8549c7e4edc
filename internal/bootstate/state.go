package bootstate

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/refusal"
)

// Slot is re-exported for the callers of this package.
type Slot = partition.Slot

// SlotState says whether GRUB may boot a slot.
type SlotState string

// Slot states.
const (
	OK      SlotState = "ok"
	Writing SlotState = "writing"
	Bad     SlotState = "bad"
	Empty   SlotState = "empty"
)

// Errors callers act on.
var (
	ErrNotAllowed = refusal.New("boot state transition not allowed")
	ErrNoRunning  = refusal.New("running slot unknown")
)

// State is the boot state of a disk.
type State struct {
	Committed Slot      `json:"committed"`
	Trial     Slot      `json:"trial,omitempty"`
	Tries     int       `json:"tries"`
	A         SlotState `json:"slot_a"`
	B         SlotState `json:"slot_b"`
}

// Initial is the state after install: slot A committed and ok, B empty.
func Initial() State { return State{Committed: partition.A, A: OK, B: Empty} }

// FromEnv interprets an environment as grub.cfg does: a committed slot that
// is not b is a; a tries count that is not exactly "1", "2" or "3" is 0
// (the script compares strings: "03" or "+3" is no count to it); a slot
// state that is not one of the four is unset.
func FromEnv(env grub.Env) State {
	get := func(n string) string { v, _ := env.Get(n); return v }
	s := State{Committed: partition.A, A: slotState(get(grub.VarSlotA)), B: slotState(get(grub.VarSlotB))}
	if get(grub.VarCommitted) == "b" {
		s.Committed = partition.B
	}
	if t := Slot(get(grub.VarTrial)); t.Valid() {
		s.Trial = t
	}
	if n, err := strconv.Atoi(get(grub.VarTries)); err == nil && n >= 1 && n <= grub.MaxTries && strconv.Itoa(n) == get(grub.VarTries) {
		s.Tries = n
	}
	return s
}

// slotState reads a slot's state; a value that is none of the four is
// unset, as good as any other to grub.cfg, which boots only "ok". Kept as
// it was, a long one would leave no room in the block to save the next
// state.
func slotState(v string) SlotState {
	switch st := SlotState(v); st {
	case OK, Writing, Bad, Empty:
		return st
	}
	return ""
}

// Env is the environment that stores s, variables in a fixed order.
func (s State) Env() grub.Env {
	return grub.Env{
		{Name: grub.VarCommitted, Value: string(s.Committed)},
		{Name: grub.VarTrial, Value: string(s.Trial)},
		{Name: grub.VarTries, Value: strconv.Itoa(s.Tries)},
		{Name: grub.VarSlotA, Value: string(s.A)},
		{Name: grub.VarSlotB, Value: string(s.B)},
	}
}

// Of returns the state of slot.
func (s State) Of(slot Slot) SlotState {
	if slot == partition.B {
		return s.B
	}
	return s.A
}

func (s *State) set(slot Slot, st SlotState) {
	if slot == partition.B {
		s.B = st
	} else {
		s.A = st
	}
}

// GrubBoot is the choice grub.cfg makes: the slot it boots and the state it
// saves before booting. A trial slot that is ok and has tries left is booted
// with one try fewer; otherwise the committed slot, with nothing saved.
func (s State) GrubBoot() (Slot, State) {
	if s.Trial.Valid() && s.Trial != s.Committed && s.Of(s.Trial) == OK && s.Tries >= 1 && s.Tries <= grub.MaxTries {
		n := s
		n.Tries--
		return s.Trial, n
	}
	return s.Committed, s
}

// Prepare marks slot as being written, so GRUB never boots it until Arm. The
// running and the committed slot cannot be prepared.
func (s State) Prepare(slot, running Slot) (State, error) {
	if !slot.Valid() {
		return s, fmt.Errorf("%w: invalid slot %q", ErrNotAllowed, slot)
	}
	if slot == running {
		return s, fmt.Errorf("%w: slot %s is running", ErrNotAllowed, slot)
	}
	if slot == s.Committed {
		return s, fmt.Errorf("%w: slot %s is the committed slot", ErrNotAllowed, slot)
	}
	if s.Trial == slot {
		s.Trial, s.Tries = "", 0
	}
	s.set(slot, Writing)
	return s, nil
}

// Arm makes slot the trial slot with tries boots (1 to 3).
func (s State) Arm(slot, running Slot, tries int) (State, error) {
	if !slot.Valid() {
		return s, fmt.Errorf("%w: invalid slot %q", ErrNotAllowed, slot)
	}
	if tries < 1 || tries > grub.MaxTries {
		return s, fmt.Errorf("%w: %d trial boots, want 1 to %d", ErrNotAllowed, tries, grub.MaxTries)
	}
	if slot == running || slot == s.Committed {
		return s, fmt.Errorf("%w: slot %s is running or committed; arm the other slot", ErrNotAllowed, slot)
	}
	s.set(slot, OK)
	s.Trial, s.Tries = slot, tries
	return s, nil
}

// Commit makes the running trial slot the committed one.
func (s State) Commit(running Slot) (State, error) {
	if !running.Valid() {
		return s, ErrNoRunning
	}
	if s.Trial != running {
		if s.Committed == running {
			return s, fmt.Errorf("%w: slot %s is already committed", ErrNotAllowed, running)
		}
		return s, fmt.Errorf("%w: running slot %s is not on trial", ErrNotAllowed, running)
	}
	s.Committed, s.Trial, s.Tries = running, "", 0
	s.set(running, OK)
	return s, nil
}

// Rollback goes back to the other slot, and is idempotent: run again, it
// changes nothing more. With a trial pending or running, the trial slot is
// marked bad (it holds the update being refused, never a previous version)
// and the committed slot stays. With no trial, running the committed slot,
// the other slot becomes the committed one when it is ok; running the other
// slot, the next boot already goes back to the committed one, and nothing
// changes. The next boot shows it.
func (s State) Rollback(running Slot) (State, error) {
	if !running.Valid() {
		return s, ErrNoRunning
	}
	if s.Trial.Valid() {
		return s.MarkBad(s.Trial)
	}
	if running != s.Committed {
		return s, nil
	}
	other := s.Committed.Other()
	if s.Of(other) != OK {
		return s, fmt.Errorf("%w: slot %s is %s, nothing to roll back to", ErrNotAllowed, other, stateName(s.Of(other)))
	}
	s.Committed = other
	return s, nil
}

// MarkBad records that slot failed: it is never booted again until it is
// rewritten. The committed slot cannot be marked bad.
func (s State) MarkBad(slot Slot) (State, error) {
	if !slot.Valid() {
		return s, fmt.Errorf("%w: invalid slot %q", ErrNotAllowed, slot)
	}
	if slot == s.Committed {
		return s, fmt.Errorf("%w: slot %s is the committed slot", ErrNotAllowed, slot)
	}
	if s.Trial == slot {
		s.Trial, s.Tries = "", 0
	}
	s.set(slot, Bad)
	return s, nil
}

// Phase is what a boot finds when it looks at the state and the running slot.
type Phase string

// Phases of Assess.
const (
	// Committed: running the committed slot, no trial pending.
	Committed Phase = "committed"
	// TrialRunning: running the trial slot; the health gate decides.
	TrialRunning Phase = "trial-running"
	// TrialPending: a trial is armed and has boots left, but this is the
	// committed slot (armed and not rebooted yet, or the trial did not load).
	TrialPending Phase = "trial-pending"
	// TrialFailed: the trial used up its boots and GRUB fell back to the
	// committed slot.
	TrialFailed Phase = "trial-failed"
	// Unknown: running a slot that is neither committed nor on trial (booted
	// by hand, or a last-resort boot).
	Unknown Phase = "unknown"
)

// Assess tells what the running system is in the boot protocol.
func (s State) Assess(running Slot) Phase {
	switch {
	case s.Trial.Valid() && running == s.Trial:
		return TrialRunning
	case running != s.Committed:
		return Unknown
	case s.Trial.Valid() && s.Tries > 0 && s.Of(s.Trial) == OK:
		return TrialPending
	case s.Trial.Valid():
		return TrialFailed
	}
	return Committed
}

func stateName(st SlotState) string {
	if st == "" {
		return "unset"
	}
	return string(st)
}

// RunningFromCmdline reads twinroot.slot= from a kernel command line file
// such as /proc/cmdline.
func RunningFromCmdline(path string) (Slot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoRunning, err)
	}
	return ParseCmdline(string(b))
}

// ParseCmdline finds twinroot.slot= in a kernel command line.
func ParseCmdline(cmdline string) (Slot, error) {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "twinroot.slot="); ok {
			s, err := partition.ParseSlot(v)
			if err != nil {
				return "", fmt.Errorf("%w: kernel command line: %v", ErrNoRunning, err)
			}
			return s, nil
		}
	}
	return "", fmt.Errorf("%w: no twinroot.slot= on the kernel command line", ErrNoRunning)
}
