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
	HighestSerial uint64            `json:"highest_serial"`
	MinSerial     uint64            `json:"min_serial"`
	BadVersions   []string          `json:"bad_versions,omitempty"`
	LatestETag    string            `json:"latest_etag,omitempty"`
	Reported      map[string]string `json:"reported,omitempty"`
	LastCheck     *Check            `json:"last_check,omitempty"`
}

// Check is the outcome of the last check of the channel.
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
