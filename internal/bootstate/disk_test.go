package bootstate

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/testdisk"
)

func newDisk(t *testing.T, st State) string { return testdisk.New(t, st.Env()) }

func TestDiskUpdate(t *testing.T) {
	d, err := OpenDisk(newDisk(t, Initial()))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, err := d.Load()
	if err != nil || got != Initial() {
		t.Fatalf("Load = %+v, %v; want %+v", got, err, Initial())
	}
	armed, err := d.Update(func(s State) (State, error) { return s.Arm(b, a, 2) })
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Load(); got != armed || got.Trial != b || got.Tries != 2 {
		t.Errorf("after Update: Load = %+v, want %+v", got, armed)
	}
	if _, err := d.Update(func(s State) (State, error) { return s.Commit(a) }); err == nil {
		t.Error("refused transition reported success")
	}
	if got, _ := d.Load(); got != armed {
		t.Errorf("refused transition changed the state to %+v", got)
	}
}

// sectorLog records the 512-byte sectors a Save writes, in order, and lets a
// test replay a prefix of them onto a copy of the disk as it was before.
type sectorLog struct {
	f       *os.File
	sectors []sectorWrite
}

type sectorWrite struct {
	off  int64
	data []byte
}

func (l *sectorLog) ReadAt(p []byte, off int64) (int, error) { return l.f.ReadAt(p, off) }
func (l *sectorLog) Sync() error                             { return l.f.Sync() }
func (l *sectorLog) WriteAt(p []byte, off int64) (int, error) {
	if off%512 != 0 || len(p)%512 != 0 {
		return 0, fmt.Errorf("unaligned write of %d bytes at %d", len(p), off)
	}
	for i := 0; i < len(p); i += 512 {
		l.sectors = append(l.sectors, sectorWrite{off + int64(i), append([]byte(nil), p[i:i+512]...)})
	}
	return l.f.WriteAt(p, off)
}

// tornDisk holds a disk file and the four environment blocks as they were
// before a Save, and rebuilds torn versions of it in place.
type tornDisk struct {
	path   string
	offs   [4]int64
	before [4][]byte
}

func snapshot(t *testing.T, path string) *tornDisk {
	t.Helper()
	d, err := OpenDisk(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	td := &tornDisk{path: path, offs: d.Env.Offsets()}
	for i, off := range td.offs {
		td.before[i] = make([]byte, grub.EnvSize)
		if _, err := d.File.ReadAt(td.before[i], off); err != nil {
			t.Fatal(err)
		}
	}
	return td
}

// tear writes the old blocks back, then the first k sector writes, then,
// when garble is set, garbage in place of sector k (a power cut in the
// middle of a sector).
func (td *tornDisk) tear(t *testing.T, writes []sectorWrite, k int, garble bool) {
	t.Helper()
	f, err := os.OpenFile(td.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, off := range td.offs {
		f.WriteAt(td.before[i], off)
	}
	for _, w := range writes[:k] {
		f.WriteAt(w.data, w.off)
	}
	if garble {
		f.WriteAt(bytes.Repeat([]byte{0xA5, 0x00, 0x5A, '\n'}, 128), writes[k].off)
	}
}

// TestSaveTornEverywhere checks the crash-safety of every transition: a
// power cut at every sector boundary of a Save (and inside every sector)
// leaves a disk whose boot state is the old or the new one, and a later Save
// from there restores a clean state.
func TestSaveTornEverywhere(t *testing.T) {
	type step struct {
		name string
		from State
		f    func(State) (State, error)
	}
	armed := State{Committed: a, Trial: b, Tries: 1, A: OK, B: OK}
	steps := []step{
		{"prepare", Initial(), func(s State) (State, error) { return s.Prepare(b, a) }},
		{"arm", State{Committed: a, A: OK, B: Writing}, func(s State) (State, error) { return s.Arm(b, a, 1) }},
		{"grub countdown", armed, func(s State) (State, error) { _, n := s.GrubBoot(); return n, nil }},
		{"commit", State{Committed: a, Trial: b, A: OK, B: OK}, func(s State) (State, error) { return s.Commit(b) }},
		{"mark bad", State{Committed: a, Trial: b, A: OK, B: OK}, func(s State) (State, error) { return s.MarkBad(b) }},
		{"rollback", State{Committed: b, A: OK, B: OK}, func(s State) (State, error) { return s.Rollback(b) }},
	}
	total := 0
	for _, st := range steps {
		// Earlier cuts leave the disk in one of these shapes before the Save.
		for _, prior := range []string{"clean", "copy 1 being written", "copy 2 damaged"} {
			t.Run(st.name+"/"+prior, func(t *testing.T) {
				path := newDisk(t, st.from)
				d, err := OpenDisk(path)
				if err != nil {
					t.Fatal(err)
				}
				lock, _ := grub.EncodeEnv(grub.Env{{Name: "twinroot_editing", Value: "1"}})
				garbage := bytes.Repeat([]byte{0xA5, 0x00, 0x5A, '\n'}, 256)
				switch prior {
				case "copy 1 being written":
					d.File.WriteAt(lock, d.Env.Offsets()[0])
				case "copy 2 damaged":
					d.File.WriteAt(lock, d.Env.Offsets()[2])
					d.File.WriteAt(garbage, d.Env.Offsets()[3])
				}
				d.Close()
				want, err := st.f(st.from)
				if err != nil {
					t.Fatal(err)
				}
				td := snapshot(t, path)
				f, err := os.OpenFile(path, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				log := &sectorLog{f: f}
				l, err := partition.Read(f)
				if err != nil {
					t.Fatal(err)
				}
				env, err := grub.OpenEnvStore(log, l.ESP.Start)
				if err != nil {
					t.Fatal(err)
				}
				if err := env.Save(want.Env()); err != nil {
					t.Fatal(err)
				}
				f.Close()
				if len(log.sectors) != 12 {
					t.Fatalf("Save wrote %d sectors, want 12 (6 blocks of 2)", len(log.sectors))
				}
				for k := 0; k <= len(log.sectors); k++ {
					for _, garble := range []bool{false, true} {
						if garble && k == len(log.sectors) {
							continue
						}
						total++
						td.tear(t, log.sectors, k, garble)
						got := loadImageFile(t, path)
						if got != st.from && got != want {
							t.Fatalf("cut after %d sectors (garbled %v): state %+v is neither the old %+v nor the new %+v", k, garble, got, st.from, want)
						}
						// The next writer leaves a clean disk from any torn one.
						if next := resave(t, path, got); next != got {
							t.Fatalf("cut after %d sectors (garbled %v): Save over it gave %+v, want %+v", k, garble, next, got)
						}
					}
				}
			})
		}
	}
	t.Logf("%d torn disks checked", total)
}

func loadImageFile(t *testing.T, path string) State {
	t.Helper()
	d, err := OpenDisk(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s, err := d.Load()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// resave saves s over a torn disk, checks that every block is valid, and
// returns the state read back.
func resave(t *testing.T, path string, s State) State {
	t.Helper()
	d, err := OpenDisk(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Save(s); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		b := make([]byte, grub.EnvSize)
		d.File.ReadAt(b, d.Env.Offsets()[i])
		if _, err := grub.DecodeEnv(b); err != nil {
			t.Fatalf("block %d invalid after a full Save: %v", i, err)
		}
	}
	got, _ := d.Load()
	return got
}
