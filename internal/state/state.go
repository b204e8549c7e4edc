package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/twinroot/twinroot/internal/atomicfile"
	"github.com/twinroot/twinroot/internal/chunk"
)

// FileName of the state in its directory.
const FileName = "state.json"

// State is what the updater remembers.
type State struct {
	HighestSerial uint64   `json:"highest_serial"`
	MinSerial     uint64   `json:"min_serial"`
	BadVersions   []string `json:"bad_versions,omitempty"`
	LatestETag    string   `json:"latest_etag,omitempty"`
	LastCheck     *Check   `json:"last_check,omitempty"`
	// Failures holds, by version, why the device could not take it: the
	// last failure of each version the channel offers, until it is armed.
	Failures map[string]Failure `json:"failures,omitempty"`
}

// Failure is why a round could not take one version, in one line.
type Failure struct {
	Time    time.Time `json:"time"`              // of the last failed round
	First   time.Time `json:"first"`             // of the first
	Rounds  int       `json:"rounds"`            // failed rounds, first to last
	Refused bool      `json:"refused,omitempty"` // a rule refused it (exit code 3); else fetching or writing failed (1)
	Reason  string    `json:"reason"`
}

// Fail records that a round could not take version; it returns whether
// the reason is new for the version (the first report of it).
func (s *State) Fail(version string, at time.Time, refused bool, reason string) bool {
	if s.Failures == nil {
		s.Failures = map[string]Failure{}
	}
	f, seen := s.Failures[version]
	if !seen {
		f.First = at
	}
	first := !seen || f.Reason != reason
	f.Time, f.Rounds, f.Refused, f.Reason = at, f.Rounds+1, refused, reason
	s.Failures[version] = f
	return first
}

// Succeeded forgets the failures of version: it was armed.
func (s *State) Succeeded(version string) { delete(s.Failures, version) }

// Offered forgets the failures of every version but the one the channel
// offers now: those of versions it no longer offers say nothing of what
// the device will do.
func (s *State) Offered(version string) {
	for v := range s.Failures {
		if v != version {
			delete(s.Failures, v)
		}
	}
}

// Check is the outcome of the last check of the channel: an outcome of
// the agent's (up-to-date, update-available, refused), or "failed" when
// the channel's latest.json could not be read (Reason says why).
type Check struct {
	Time    time.Time `json:"time"`
	Outcome string    `json:"outcome"`
	Reason  string    `json:"reason,omitempty"`
	Version string    `json:"version,omitempty"`
	Serial  uint64    `json:"serial,omitempty"`
}

// IsBad reports whether version is recorded bad.
func (s *State) IsBad(version string) bool { return slices.Contains(s.BadVersions, version) }

// MarkBad records version as bad.
func (s *State) MarkBad(version string) {
	if version != "" && !s.IsBad(version) {
		s.BadVersions = append(s.BadVersions, version)
	}
}

// Accept records an accepted release's serial and floor.
func (s *State) Accept(serial, minSerial uint64) {
	s.HighestSerial = max(s.HighestSerial, serial)
	s.MinSerial = max(s.MinSerial, minSerial)
}

// Store keeps the state in a directory.
type Store struct{ Dir string }

// Load reads the state; a missing file is the empty state.
func (st Store) Load() (State, error) {
	b, err := os.ReadFile(filepath.Join(st.Dir, FileName))
	if errors.Is(err, os.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read updater state: %w", err)
	}
	s, err := parse(b)
	if err != nil {
		return State{}, fmt.Errorf("updater state %s: %w", filepath.Join(st.Dir, FileName), err)
	}
	return s, nil
}

func parse(b []byte) (State, error) {
	var s State
	err := json.Unmarshal(b, &s)
	return s, err
}

// marshal is the content of state.json.
func (s State) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Save replaces the state atomically.
func (st Store) Save(s State) error {
	if err := os.MkdirAll(st.Dir, 0o755); err != nil {
		return fmt.Errorf("updater state: %w", err)
	}
	b, err := s.marshal()
	if err != nil {
		return fmt.Errorf("updater state: %w", err)
	}
	return atomicfile.Write(filepath.Join(st.Dir, FileName), b, 0o644)
}

// Update loads, applies f and saves.
func (st Store) Update(f func(*State)) (State, error) {
	s, err := st.Load()
	if err != nil {
		return s, err
	}
	f(&s)
	return s, st.Save(s)
}

// Files of the directory besides state.json (see the package comment).
const (
	JournalFile = "journal.json"
	LatestFile  = "latest.json"
	slotIndex   = "slot-%s.idx"
)

// Path is the path of one of the directory's files.
func (st Store) Path(name string) string { return filepath.Join(st.Dir, name) }

// SlotIndex is the chunk index slot was written from, or nil when none is
// kept or it does not parse.
func (st Store) SlotIndex(slot string) *chunk.Index {
	b, err := os.ReadFile(st.Path(fmt.Sprintf(slotIndex, slot)))
	if err != nil {
		return nil
	}
	idx, err := chunk.ParseIndex(b)
	if err != nil {
		return nil
	}
	return idx
}

// SaveSlotIndex records the index slot was written from.
func (st Store) SaveSlotIndex(slot string, idx *chunk.Index) error {
	b, err := idx.MarshalBinary()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(st.Dir, 0o755); err != nil {
		return fmt.Errorf("updater state: %w", err)
	}
	return atomicfile.Write(st.Path(fmt.Sprintf(slotIndex, slot)), b, 0o644)
}

// DropSlotIndex forgets the index of slot: called before its first byte is
// overwritten.
func (st Store) DropSlotIndex(slot string) error {
	err := os.Remove(st.Path(fmt.Sprintf(slotIndex, slot)))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("updater state: %w", err)
	}
	return nil
}

// SlotIndexName is the file name of slot's index in the directory, for an
// installer that seeds the directory.
func SlotIndexName(slot string) string { return fmt.Sprintf(slotIndex, slot) }
