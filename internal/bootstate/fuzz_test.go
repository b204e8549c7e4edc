package bootstate

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/testfuzz"
)

// memDisk is a disk in memory: Sync is free, so a fuzz run spends its time
// in the reader, not in fsync.
type memDisk []byte

func (m memDisk) ReadAt(p []byte, off int64) (int, error)  { return copy(p, m[off:]), nil }
func (m memDisk) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }
func (m memDisk) Sync() error                              { return nil }

// fuzzESP returns a small ESP image made by grub.MakeESP with the boot
// environment of Initial, at byte espOffset of the image.
func fuzzESP(f *testing.F) memDisk {
	path := filepath.Join(f.TempDir(), "esp.img")
	disk, err := os.Create(path)
	if err != nil {
		f.Fatal(err)
	}
	const size = 64 << 10
	if err := disk.Truncate(espOffset + size); err != nil {
		f.Fatal(err)
	}
	files, err := grub.InitialEnvFiles(Initial().Env())
	if err == nil {
		err = grub.MakeESP(disk, espOffset, size, files)
	}
	disk.Close()
	if err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

const espOffset = 512

// block makes b one environment block as it lies on the ESP: cut or padded
// with '#' to grub.EnvSize.
func block(b []byte) []byte {
	out := bytes.Repeat([]byte{'#'}, grub.EnvSize)
	copy(out, b)
	return out
}

// FuzzLoad writes arbitrary bytes into the four environment blocks of an
// ESP (lock.1, env.1, lock.2, env.2: a power cut, a damaged or hand-edited
// ESP) and loads the boot state. The state must be within its documented
// bounds, the boot Load predicts must be the boot grub.cfg makes from the
// same bytes (modelled below from GRUB's own loader), and every transition
// the state allows must save and load back unchanged.
func FuzzLoad(f *testing.F) {
	esp := fuzzESP(f)
	store, err := grub.OpenEnvStore(esp, espOffset)
	if err != nil {
		f.Fatal(err)
	}
	offs := store.Offsets()
	enc := func(env grub.Env) []byte {
		b, err := grub.EncodeEnv(env)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	unlocked, editing := enc(grub.Env{{Name: "twinroot_editing", Value: "0"}}), enc(grub.Env{{Name: "twinroot_editing", Value: "1"}})
	armed := State{Committed: partition.A, Trial: partition.B, Tries: 3, A: OK, B: OK}
	for name, st := range map[string]State{"initial": Initial(), "armed": armed, "committed-b": {Committed: partition.B, A: Bad, B: OK}} {
		testfuzz.Add(f, name, unlocked, enc(st.Env()), unlocked, enc(st.Env()))
		testfuzz.Add(f, name+"-copy-1-being-written", editing, enc(st.Env()), unlocked, enc(Initial().Env()))
	}
	// Found by this target: the model disagreed with GRUB on each of these.
	sig := "# GRUB Environment Block\n"
	testfuzz.Add(f, "name-twice", unlocked, []byte(sig+"twinroot_committed=b\ntwinroot_committed=a\n"), unlocked, enc(armed.Env()))
	testfuzz.Add(f, "tries-03", unlocked, []byte(sig+"twinroot_trial=b\ntwinroot_tries=03\ntwinroot_slot_b=ok\n"), unlocked, enc(nil))
	testfuzz.Add(f, "tries-03-broken-tail", unlocked, []byte(sig+"twinroot_trial=b\ntwinroot_tries=03\ntwinroot_slot_b=ok\nbroken"), editing, enc(nil))
	testfuzz.Add(f, "broken-lock", []byte(sig+"twinroot_editing=0\nbroken"), enc(armed.Env()), unlocked, enc(Initial().Env()))
	testfuzz.Add(f, "c-strings", unlocked, []byte(sig+"twinroot_trial\x00=b\ntwinroot_slot_b=ok\x00x\ntwinroot_tries=2\n"), unlocked, enc(nil))
	testfuzz.Add(f, "escaped-comment", unlocked, []byte(sig+"#\\\ntwinroot_committed=b\n"), unlocked, enc(nil))
	testfuzz.Add(f, "long-slot-state", unlocked, []byte(sig+"twinroot_slot_b=ok\ntwinroot_slot_a="+strings.Repeat("x", 950)+"\n"), unlocked, enc(nil))
	f.Fuzz(func(t *testing.T, lock1, env1, lock2, env2 []byte) {
		// Each run rewrites all four blocks, and Save writes nothing else.
		blocks := [4][]byte{block(lock1), block(env1), block(lock2), block(env2)}
		for i, b := range blocks {
			esp.WriteAt(b, offs[i])
		}
		d := &Disk{Env: store}
		s, err := d.Load()
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		known := func(st SlotState) bool { return st == "" || st == OK || st == Writing || st == Bad || st == Empty }
		if !s.Committed.Valid() || (s.Trial != "" && !s.Trial.Valid()) || s.Tries < 0 || s.Tries > grub.MaxTries || !known(s.A) || !known(s.B) {
			t.Fatalf("Load = %+v: out of bounds", s)
		}
		slot, next := s.GrubBoot()
		gslot, gtries := grubBoots(blocks)
		if slot != gslot {
			t.Fatalf("Load = %+v boots slot %s, grub.cfg boots %s", s, slot, gslot)
		}
		if slot != s.Committed && fmt.Sprint(next.Tries) != gtries {
			t.Fatalf("GrubBoot leaves %d tries, grub.cfg saves %q", next.Tries, gtries)
		}
		for _, running := range []Slot{partition.A, partition.B} {
			switch p := s.Assess(running); p {
			case Committed, TrialRunning, TrialPending, TrialFailed, Unknown:
			default:
				t.Fatalf("Assess(%s) = %q", running, p)
			}
		}

		// Every transition the state allows is saved and read back as is.
		var nexts []State
		if slot != s.Committed {
			nexts = append(nexts, next)
		}
		for _, slot := range []Slot{partition.A, partition.B} {
			other := slot.Other()
			for _, n := range []func() (State, error){
				func() (State, error) { return s.Prepare(slot, other) },
				func() (State, error) { return s.Arm(slot, other, grub.MaxTries) },
				func() (State, error) { return s.Commit(slot) },
				func() (State, error) { return s.Rollback(slot) },
				func() (State, error) { return s.MarkBad(slot) },
			} {
				if n, err := n(); err == nil {
					nexts = append(nexts, n)
				}
			}
		}
		for _, n := range nexts {
			if err := d.Save(n); err != nil {
				t.Fatalf("Save(%+v) after loading %+v: %v", n, s, err)
			}
			if got, err := d.Load(); err != nil || got != n {
				t.Fatalf("Load after Save(%+v) = %+v, %v", n, got, err)
			}
		}
	})
}

// grubBoots is grub.cfg's choice of slot from the four blocks, written from
// GRUB's source rather than from this package: load_env fails only on a
// block without the signature and otherwise sets, in order, every variable
// before the first broken line (a later one of the same name wins); names
// and values are C strings; the script compares strings. It returns the
// slot booted and, for a trial boot, the tries count saved.
func grubBoots(blocks [4][]byte) (slot Slot, tries string) {
	vars := map[string]string{"twinroot_editing": "1"}
	loadEnv(blocks[0], vars, "twinroot_editing")
	first, second := blocks[3], blocks[1]
	if vars["twinroot_editing"] == "0" {
		first, second = blocks[1], blocks[3]
	}
	names := []string{"twinroot_committed", "twinroot_trial", "twinroot_tries", "twinroot_slot_a", "twinroot_slot_b"}
	for _, n := range names {
		vars[n] = ""
	}
	vars["twinroot_tries"] = "0"
	if !loadEnv(first, vars, names...) {
		loadEnv(second, vars, names...)
	}
	committed, trial := vars["twinroot_committed"], vars["twinroot_trial"]
	if committed != "b" {
		committed = "a"
	}
	state := vars["twinroot_slot_a"]
	if trial == "b" {
		state = vars["twinroot_slot_b"]
	}
	if (trial == "a" || trial == "b") && trial != committed && state == "ok" {
		switch vars["twinroot_tries"] {
		case "3":
			return Slot(trial), "2"
		case "2":
			return Slot(trial), "1"
		case "1":
			return Slot(trial), "0"
		}
	}
	return Slot(committed), ""
}

// loadEnv is GRUB's load_env with a whitelist (grub-core/commands/loadenv.c
// and lib/envblk.c): false when the block has no signature.
func loadEnv(b []byte, vars map[string]string, whitelist ...string) bool {
	const sig = "# GRUB Environment Block\n"
	if len(b) <= len(sig) || string(b[:len(sig)]) != sig {
		return false
	}
	cstr := func(s []byte) string {
		if i := bytes.IndexByte(s, 0); i >= 0 {
			s = s[:i]
		}
		return string(s)
	}
	nextLine := func(p int) int {
		for p < len(b) {
			if b[p] == '\\' {
				p += 2
			} else if b[p] == '\n' {
				break
			} else {
				p++
			}
		}
		return p + 1
	}
	p := len(sig)
	for p < len(b) {
		if b[p] != '#' {
			nameStart := p
			for p < len(b) && b[p] != '=' {
				p++
			}
			if p == len(b) {
				return true // broken
			}
			name := cstr(b[nameStart:p])
			p++
			valueStart := p
			for p < len(b) && b[p] != '\n' {
				if b[p] == '\\' {
					p += 2
				} else {
					p++
				}
			}
			if p >= len(b) {
				return true // broken
			}
			var value []byte
			for q := valueStart; b[q] != '\n'; q++ {
				if b[q] == '\\' {
					q++
				}
				value = append(value, b[q])
			}
			for _, w := range whitelist {
				if w == name {
					vars[name] = cstr(value)
				}
			}
		}
		p = nextLine(p)
	}
	return true
}

// FuzzParseCmdline: the kernel command line is whatever the boot loader or
// a person at its prompt passed.
func FuzzParseCmdline(f *testing.F) {
	for name, s := range map[string]string{
		"debian":       "BOOT_IMAGE=/boot/vmlinuz twinroot.slot=b ro quiet\n",
		"grub-cfg":     "twinroot.slot=a twinroot.trial=1 root=PARTLABEL=twinroot-a ro console=tty0 console=ttyS0,115200 panic=5",
		"no-such-slot": "twinroot.slot=c",
		"empty-then-a": "twinroot.slot= twinroot.slot=a",
		"upper-case":   "twinroot.slot=A\t",
		"empty":        "",
	} {
		testfuzz.Add(f, name, s)
	}
	f.Fuzz(func(t *testing.T, cmdline string) {
		s, err := ParseCmdline(cmdline)
		if err != nil {
			return
		}
		if !s.Valid() {
			t.Fatalf("ParseCmdline(%q) = %q, not a slot", cmdline, s)
		}
		if !strings.Contains(cmdline, "twinroot.slot=") {
			t.Fatalf("ParseCmdline(%q) = %q without twinroot.slot=", cmdline, s)
		}
	})
}
