package fetch

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/twinroot/twinroot/internal/atomicfile"
)

// ErrBadJournal: a journal file that does not parse. Apply starts over.
var ErrBadJournal = errors.New("unreadable fetch journal")

// State is one journal record (doc.go).
type State struct {
	Index  [sha256.Size]byte // SHA-256 of the chunk index: the release being written
	Target int64             // Options.TargetOffset: which slot of the disk it is written to
	Chunks int               // leading chunks verified, written and synced
	Offset int64             // raw bytes those chunks cover
	Size   int64             // raw image size
}

// Journal keeps the State of an apply across power cuts. Load of a journal
// never saved returns the zero State.
type Journal interface {
	Load() (State, error)
	Save(State) error
}

// FileJournal is a Journal in one file, written atomically (doc.go).
type FileJournal struct {
	Path string
}

// journalFile is the JSON form of a State.
type journalFile struct {
	Format int    `json:"format"`
	Index  string `json:"index"`
	Target int64  `json:"target"`
	Chunks int    `json:"chunks"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
}

const journalFormat = 1

// Load reads the journal; a missing file is the zero State.
func (j FileJournal) Load() (State, error) {
	b, err := os.ReadFile(j.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read fetch journal: %w", err)
	}
	s, err := parseState(b)
	if err != nil {
		return State{}, fmt.Errorf("%s: %w", j.Path, err)
	}
	return s, nil
}

// Save replaces the journal with s atomically: a power cut leaves the old
// record or the new one (atomicfile).
func (j FileJournal) Save(s State) error {
	b, err := marshalState(s)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(j.Path, b, 0o600); err != nil {
		return fmt.Errorf("save fetch journal: %w", err)
	}
	return nil
}

func marshalState(s State) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(journalFile{
		Format: journalFormat, Index: hex.EncodeToString(s.Index[:]), Target: s.Target,
		Chunks: s.Chunks, Offset: s.Offset, Size: s.Size,
	})
	if err != nil {
		return nil, fmt.Errorf("encode fetch journal: %w", err)
	}
	return append(b, '\n'), nil
}

// parseState decodes a journal file; every error wraps ErrBadJournal.
func parseState(b []byte) (State, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f journalFile
	if err := dec.Decode(&f); err != nil {
		return State{}, fmt.Errorf("%w: %v", ErrBadJournal, err)
	}
	if dec.More() {
		return State{}, fmt.Errorf("%w: data after the record", ErrBadJournal)
	}
	if f.Format != journalFormat {
		return State{}, fmt.Errorf("%w: format %d, this reader knows %d", ErrBadJournal, f.Format, journalFormat)
	}
	sum, err := hex.DecodeString(f.Index)
	if err != nil || len(sum) != sha256.Size {
		return State{}, fmt.Errorf("%w: index %q is not a hex SHA-256", ErrBadJournal, f.Index)
	}
	s := State{Index: [sha256.Size]byte(sum), Target: f.Target, Chunks: f.Chunks, Offset: f.Offset, Size: f.Size}
	if err := s.check(); err != nil {
		return State{}, err
	}
	return s, nil
}

func (s State) check() error {
	if s.Target < 0 || s.Chunks < 0 || s.Offset < 0 || s.Size < 0 || s.Offset > s.Size {
		return fmt.Errorf("%w: target %d, %d chunks, offset %d, size %d out of range", ErrBadJournal, s.Target, s.Chunks, s.Offset, s.Size)
	}
	return nil
}
