package fetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/twinroot/twinroot/internal/source"
)

// A phase of an apply where a power cut can strike.
type phase int

const (
	onRunning  phase = iota // a read of the running slot (scan, local copies)
	onWire                  // a read of a response body
	onWrite                 // a write to the target
	onSync                  // a sync of the target
	onJournal               // a journal record
	onReadBack              // a read of the target (copies, final verify)
	phases
)

var phaseNames = [phases]string{"running", "wire", "write", "sync", "journal", "read-back"}

var errPowerCut = errors.New("power cut")

// tripwire counts the operations of each phase and cancels the apply at the
// at-th operation of phase cut (never when at is 0).
type tripwire struct {
	mu     sync.Mutex
	counts [phases]int64
	cut    phase
	at     int64
	cancel context.CancelFunc
	fired  bool
}

// hit counts one operation and reports whether the power goes now.
func (w *tripwire) hit(p phase) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.counts[p]++
	if w.at > 0 && p == w.cut && w.counts[p] == w.at {
		w.fired = true
		w.cancel()
		return true
	}
	return false
}

type tripReaderAt struct {
	r io.ReaderAt
	w *tripwire
}

func (t tripReaderAt) ReadAt(p []byte, off int64) (int, error) {
	t.w.hit(onRunning)
	return t.r.ReadAt(p, off)
}

type tripSource struct {
	source.Source
	w *tripwire
}

func (t tripSource) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	rc, err := t.Source.GetRange(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	return tripBody{rc, t.w}, nil
}

type tripBody struct {
	io.ReadCloser
	w *tripwire
}

func (t tripBody) Read(p []byte) (int, error) {
	t.w.hit(onWire)
	return t.ReadCloser.Read(p)
}

// tripDisk: a write that the power cut strikes is issued (and may be lost
// by the crash), a sync it strikes never completes.
type tripDisk struct {
	*crashDisk
	w *tripwire
}

func (t tripDisk) WriteAt(p []byte, off int64) (int, error) {
	t.w.hit(onWrite)
	return t.crashDisk.WriteAt(p, off)
}

func (t tripDisk) ReadAt(p []byte, off int64) (int, error) {
	t.w.hit(onReadBack)
	return t.crashDisk.ReadAt(p, off)
}

func (t tripDisk) Sync() error {
	if t.w.hit(onSync) {
		return errPowerCut
	}
	return t.crashDisk.Sync()
}

// tripJournal: a record the power cut strikes is written or not (the file
// journal's rename is atomic).
type tripJournal struct {
	Journal
	w    *tripwire
	save bool
}

func (t tripJournal) Save(s State) error {
	if t.w.hit(onJournal) {
		if t.save {
			t.Journal.Save(s)
		}
		return errPowerCut
	}
	return t.Journal.Save(s)
}

// TestPowerCuts cuts the power at random operations of every phase of full
// and delta applies, drops or tears the writes not synced, and checks that
// every next run resumes from the journal, fetches only what lies after it,
// and ends with a verified slot.
func TestPowerCuts(t *testing.T) {
	const slot = 4096 // the slot's offset on the test disk
	v1 := mixed(8, 5<<20)
	v2 := edit(v1, 9)
	dir := t.TempDir()
	rel := publish(t, dir, "stable/2.0.0/slot.img.zst", v2, smallParams)
	r := rand.New(rand.NewPCG(10, 11))
	cs := rel.idx.Chunks

	apply := func(ctx context.Context, w *tripwire, disk *crashDisk, j Journal, delta bool) (Stats, error) {
		o := Options{
			Source: tripSource{rel.store, w}, ObjectKey: rel.key, Index: rel.idx,
			Target: tripDisk{disk, w}, TargetOffset: slot,
			Journal:   tripJournal{j, w, r.IntN(2) == 0},
			SyncEvery: 256 << 10, MaxRequest: 256 << 10, MaxGap: 16 << 10,
			Retry: noWait(3),
		}
		if delta {
			o.Running, o.RunningSize = tripReaderAt{bytes.NewReader(v1), w}, int64(len(v1))
		}
		return Apply(ctx, o)
	}

	// Count the operations of each phase in uninterrupted applies.
	var counts [2][phases]int64
	for v, delta := range []bool{false, true} {
		w := &tripwire{cancel: func() {}}
		disk := newCrashDisk(len(v2) + 2*slot)
		if _, err := apply(context.Background(), w, disk, FileJournal{Path: filepath.Join(t.TempDir(), "j")}, delta); err != nil {
			t.Fatal(err)
		}
		counts[v] = w.counts
		t.Logf("delta %v: operations per phase %v", delta, w.counts)
	}

	var cuts, resumed, runs int
	var hits [phases]int
	var skipped, fetchedResumed, fetchedFull int64
	for moment := 0; cuts < 50; moment++ {
		if moment > 200 {
			t.Fatalf("only %d power cuts after %d moments", cuts, moment)
		}
		v := moment % 2
		delta := v == 1
		disk := newCrashDisk(len(v2) + 2*slot)
		j := FileJournal{Path: filepath.Join(t.TempDir(), "journal")}
		maxCuts := 1 + r.IntN(2)
		for run := 0; ; run++ {
			before, err := j.Load()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			w := &tripwire{cancel: cancel}
			if run < maxCuts {
				w.cut = leastHit(hits, counts[v], r)
				w.at = 1 + r.Int64N(counts[v][w.cut])
			}
			st, err := apply(ctx, w, disk, j, delta)
			cancel()
			runs++
			if run > 0 {
				// Every run after a cut resumes from the journal's record.
				if before.Chunks > 0 {
					resumed++
					skipped += st.Skipped
					fetchedResumed += st.FetchedCompressed
					if !st.Resumed || st.Skipped != before.Offset {
						t.Fatalf("moment %d run %d: journal had %d chunks (%d bytes), stats %+v", moment, run, before.Chunks, before.Offset, st)
					}
					rest := int64(0)
					if before.Chunks < len(cs) {
						rest = rel.idx.CompressedSize - cs[before.Chunks].CompressedOffset
					}
					if st.FetchedCompressed > rest {
						t.Fatalf("moment %d run %d: fetched %d bytes resuming at chunk %d, only %d lie after it", moment, run, st.FetchedCompressed, before.Chunks, rest)
					}
				} else if st.Resumed {
					t.Fatalf("moment %d run %d: resumed from an empty journal", moment, run)
				}
			} else if !delta {
				fetchedFull += st.FetchedCompressed
			}
			if err == nil {
				if !bytes.Equal(disk.bytes(slot, int64(len(v2))), v2) {
					t.Fatalf("moment %d run %d: apply succeeded, slot differs from the image", moment, run)
				}
				if !bytes.Equal(disk.bytes(0, slot), make([]byte, slot)) || !bytes.Equal(disk.bytes(slot+int64(len(v2)), slot), make([]byte, slot)) {
					t.Fatalf("moment %d run %d: bytes outside the slot were written", moment, run)
				}
				break
			}
			if !w.fired {
				t.Fatalf("moment %d run %d: %v", moment, run, err)
			}
			if !errors.Is(err, context.Canceled) && !errors.Is(err, errPowerCut) {
				t.Fatalf("moment %d run %d: cut at %s #%d: %v, want a cancel", moment, run, phaseNames[w.cut], w.at, err)
			}
			cuts++
			hits[w.cut]++
			disk.crash(r)
		}
	}
	t.Logf("%d power cuts in %d runs, per phase %v; %d runs resumed, skipping %d bytes and fetching %d (first runs of full applies fetched %d)",
		cuts, runs, hits, resumed, skipped, fetchedResumed, fetchedFull)
	for p, n := range hits {
		if n == 0 {
			t.Errorf("no power cut in phase %s", phaseNames[p])
		}
	}
	if resumed < cuts/3 {
		t.Errorf("only %d of %d runs after a cut resumed from the journal", resumed, cuts)
	}
}

// leastHit picks, among the phases an apply goes through (counts), one that
// the fewest counted cuts have struck so far. A cut counts only when the
// apply notices it, and a late one in a phase with few cuts (read-back)
// goes unnoticed more often when the scheduling changes under load: drawn
// at random, such a phase could end with none and fail the test.
func leastHit(hits [phases]int, counts [phases]int64, r *rand.Rand) phase {
	var least []phase
	for p := range phases {
		switch {
		case counts[p] == 0:
		case len(least) == 0 || hits[p] < hits[least[0]]:
			least = []phase{p}
		case hits[p] == hits[least[0]]:
			least = append(least, p)
		}
	}
	return least[r.IntN(len(least))]
}
