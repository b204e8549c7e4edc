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
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("updater state %s: %w", filepath.Join(st.Dir, FileName), err)
	}
	return s, nil
}

// Save replaces the state atomically.
func (st Store) Save(s State) error {
	if err := os.MkdirAll(st.Dir, 0o755); err != nil {
		return fmt.Errorf("updater state: %w", err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(st.Dir, FileName), append(b, '\n'), 0o644)
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
