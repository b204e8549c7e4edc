package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/install"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/source"
	"github.com/twinroot/twinroot/internal/testenv"
	"github.com/twinroot/twinroot/internal/testrelease"
)

// powerKills is how many kills each power-cut test makes:
// TWINROOT_POWER_KILLS (the reliability campaign sets it), else a short
// form that keeps make test quick and still catches a regression.
func powerKills(t *testing.T) int {
	t.Helper()
	if v := os.Getenv("TWINROOT_POWER_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TWINROOT_POWER_KILLS=%q: want a positive number", v)
		}
		return n
	}
	return 16
}

// powerSeed seeds the kill instants: TWINROOT_POWER_SEED, else 1.
func powerSeed(t *testing.T) int64 {
	t.Helper()
	v := os.Getenv("TWINROOT_POWER_SEED")
	if v == "" {
		return 1
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("TWINROOT_POWER_SEED=%q: want a number", v)
	}
	return n
}

// stateRel is the updater's own state directory on the data partition:
// the only files a kill may leave changed there.
var stateRel = strings.TrimPrefix(config.DefaultStateDir, config.DataMount+"/")

// powerRig is a twinroot disk installed on a loop device, slot A from
// release 1.0.0 and 2.0.0 published in a store the device config names,
// with what a kill must leave untouched recorded. The updater runs
// against the disk's file, so that it mounts the disk's own data
// partition (through an offset loop device) and keeps its state there.
type powerRig struct {
	t          *testing.T
	dev, file  string
	tmp        string // TMPDIR of the updater: where it mounts the data partition
	layout     partition.Layout
	envOff     [4]int64
	v1, v2     string
	key        *keys.PrivateKey
	v2image    []byte
	sums       map[string][32]byte // disk regions outside the updater's state
	files      map[string][32]byte // files of the data partition outside its state
	stateSaved string              // the state directory as install left it
}

func newPowerRig(t *testing.T) *powerRig {
	if testing.Short() {
		t.Skip("process kills: slow")
	}
	testenv.NeedRoot(t)
	testenv.Need(t, "e2fsck", "debugfs", "losetup", "mount")
	ctx := context.Background()
	k, pub := testrelease.Key(t)
	r := &powerRig{t: t, key: k, tmp: t.TempDir()}
	r.v1, r.v2 = testrelease.Small(t, pub, "1.0.0", 1, 24<<20, "none"), testrelease.Small(t, pub, "2.0.0", 2, 24<<20, "none")
	grubDir := t.TempDir()
	if err := grub.BuildImages(ctx, grubDir); err != nil {
		t.Fatal(err)
	}
	storeDir := t.TempDir()
	st, _ := source.OpenStore(ctx, "file://"+storeDir, source.Options{})
	if _, err := release.Publish(ctx, st, release.PublishOptions{Dir: r.v2, Channel: "stable", Signers: []*keys.PrivateKey{k}, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "device.yaml")
	if err := os.WriteFile(cfg, []byte("source: file://"+storeDir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.dev, r.file = testenv.LoopDisk(t, partition.MinDiskSize(32<<20))
	if _, err := install.Install(ctx, install.Options{Disk: r.dev, Image: filepath.Join(r.v1, release.SlotFile), GrubDir: grubDir, SlotSize: 32 << 20, Config: cfg, Finder: &partition.Finder{SysBlock: "/sys/block", DevDir: "/dev"}}); err != nil {
		t.Fatal(err)
	}
	// mount refuses an offset loop device over a file another loop
	// device holds: the updater's own mount of the data partition is the
	// loop device its writes go through from here on.
	if out, err := exec.Command("losetup", "-d", r.dev).CombinedOutput(); err != nil {
		t.Fatalf("detach %s: %v: %s", r.dev, err, out)
	}
	d := r.open()
	r.layout, r.envOff = d.Layout, d.Env.Offsets()
	d.Close()
	var err error
	if r.v2image, err = os.ReadFile(filepath.Join(r.v2, release.SlotFile)); err != nil {
		t.Fatal(err)
	}
	saved := t.TempDir()
	r.dump(stateRel, saved) // into saved/state
	r.stateSaved = filepath.Join(saved, filepath.Base(stateRel))
	t.Cleanup(r.unmountLeftovers)
	return r
}

// open opens the disk's file as the updater does.
func (r *powerRig) open() *bootstate.Disk {
	r.t.Helper()
	d, err := bootstate.OpenDisk(r.file)
	if err != nil {
		r.t.Fatal(err)
	}
	return d
}

// load is the boot state GRUB would read now.
func (r *powerRig) load() bootstate.State {
	r.t.Helper()
	d := r.open()
	defer d.Close()
	s, err := d.Load()
	if err != nil {
		r.t.Fatalf("boot state unreadable: %v", err)
	}
	return s
}

// save writes s as the boot state, whole.
func (r *powerRig) save(s bootstate.State) {
	r.t.Helper()
	d := r.open()
	defer d.Close()
	if err := d.Save(s); err != nil {
		r.t.Fatal(err)
	}
}

// envBlocks reads lock.1, env.1, lock.2 and env.2 as they are on the disk.
func (r *powerRig) envBlocks() [4][]byte {
	r.t.Helper()
	f, err := os.Open(r.file)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	var b [4][]byte
	for i, off := range r.envOff {
		b[i] = make([]byte, grub.EnvSize)
		if _, err := f.ReadAt(b[i], off); err != nil {
			r.t.Fatal(err)
		}
	}
	return b
}

// writeEnvBlocks puts the four blocks back as they were.
func (r *powerRig) writeEnvBlocks(b [4][]byte) {
	r.t.Helper()
	f, err := os.OpenFile(r.file, os.O_RDWR, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	for i, off := range r.envOff {
		if _, err := f.WriteAt(b[i], off); err != nil {
			r.t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		r.t.Fatal(err)
	}
}

// runResult is how one updater process ended.
type runResult struct {
	out    string
	err    error
	killed bool
	took   time.Duration
}

// run runs the updater with args, killed (with every process it started:
// a power cut takes a mount or a health check along) after at unless it
// has ended by then; at 0 never kills.
func (r *powerRig) run(at time.Duration, args ...string) runResult {
	r.t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "TWINROOT_RUN_UPDATER=1", "TMPDIR="+r.tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	if at > 0 {
		timer := time.AfterFunc(at, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
		defer timer.Stop()
	}
	err := cmd.Wait()
	res := runResult{out: buf.String(), err: err, took: time.Since(start)}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			res.killed = true
		}
	}
	if res.killed {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	r.unmountLeftovers()
	return res
}

// exitCode is the exit code of a run that ended by itself.
func (res runResult) exitCode() int {
	var ee *exec.ExitError
	if errors.As(res.err, &ee) {
		return ee.ExitCode()
	}
	if res.err != nil {
		return -1
	}
	return 0
}

// unmountLeftovers unmounts the data partition a killed updater left
// mounted and detaches any loop device it left on the disk's file, as the
// reboot after a power cut would.
func (r *powerRig) unmountLeftovers() {
	r.t.Helper()
	mi, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		r.t.Fatal(err)
	}
	var mounts []string
	sc := bufio.NewScanner(mi)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 4 && strings.HasPrefix(f[4], r.tmp+"/") {
			mounts = append(mounts, f[4])
		}
	}
	mi.Close()
	for _, m := range mounts {
		if out, err := exec.Command("umount", m).CombinedOutput(); err != nil {
			r.t.Errorf("unmount %s: %v: %s", m, err, out)
		}
		os.Remove(m)
	}
	out, _ := exec.Command("losetup", "-n", "-O", "NAME", "-j", r.file).Output()
	for _, loop := range strings.Fields(string(out)) {
		exec.Command("losetup", "-d", loop).Run()
	}
}

// dump copies the directory rel of the data partition out into dir with
// debugfs, which reads the partition in place: as dir/<last name of rel>,
// or the whole partition's files right in dir for "".
func (r *powerRig) dump(rel, dir string) {
	r.t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.t.Fatal(err)
	}
	if out, err := exec.Command("debugfs", "-R", "rdump /"+rel+" "+dir, r.dataPath()).CombinedOutput(); err != nil {
		r.t.Fatalf("debugfs rdump /%s: %v\n%s", rel, err, out)
	}
}

// dataPath names the data partition inside the disk's file for e2fsprogs.
func (r *powerRig) dataPath() string {
	return fmt.Sprintf("%s?offset=%d", r.file, r.layout.Data.Start)
}

// restoreState puts the updater's state directory back as install left
// it, so the next apply starts afresh rather than finding its work done.
func (r *powerRig) restoreState() {
	r.t.Helper()
	mnt, unmount, err := partition.MountData(r.file, r.layout)
	if err != nil {
		r.t.Fatal(err)
	}
	defer func() {
		if err := unmount(); err != nil {
			r.t.Fatal(err)
		}
	}()
	dir := filepath.Join(mnt, stateRel)
	if err := os.RemoveAll(dir); err != nil {
		r.t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", r.stateSaved+"/.", dir).CombinedOutput(); err != nil {
		r.t.Fatalf("restore the state directory: %v: %s", err, out)
	}
}

// record notes what no kill may change: every region of the disk but the
// environment blocks and the slots in writable, and every file of the
// data partition outside the updater's state.
func (r *powerRig) record(writable ...bootstate.Slot) {
	r.t.Helper()
	r.sums = r.regionSums(writable)
	r.files = r.dataFiles()
}

func (r *powerRig) regionSums(writable []bootstate.Slot) map[string][32]byte {
	r.t.Helper()
	f, err := os.Open(r.file)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	l := r.layout
	parts := []partition.Part{l.BIOS, l.ESP, l.A, l.B, l.Data}
	sums := map[string][32]byte{}
	sum := func(name string, off, n int64, holes ...int64) {
		h := sha256.New()
		for _, hole := range holes { // env blocks: checked apart
			io.Copy(h, io.NewSectionReader(f, off, hole-off))
			off, n = hole+grub.EnvSize, n-(hole+grub.EnvSize-off)
		}
		if _, err := io.Copy(h, io.NewSectionReader(f, off, n)); err != nil {
			r.t.Fatal(err)
		}
		sums[name] = [32]byte(h.Sum(nil))
	}
	// The gaps around the partitions: protective MBR, boot code, both GPTs.
	end := int64(0)
	for _, p := range parts {
		sum(fmt.Sprintf("gap before %s", p.Label), end, p.Start-end)
		end = p.Start + p.Size
	}
	sum("gap after the partitions", end, l.DiskSize-end)
	holes := slices.Clone(r.envOff[:])
	slices.Sort(holes)
	sum(l.ESP.Label+" but its environment blocks", l.ESP.Start, l.ESP.Size, holes...)
	sum(l.BIOS.Label, l.BIOS.Start, l.BIOS.Size)
	for _, s := range []bootstate.Slot{partition.A, partition.B} {
		if !slices.Contains(writable, s) {
			p := l.Slot(s)
			sum(p.Label, p.Start, p.Size)
		}
	}
	return sums
}

// dataFiles hashes every file of the data partition outside the updater's
// state directory, keyed by path and mode.
func (r *powerRig) dataFiles() map[string][32]byte {
	r.t.Helper()
	dir := filepath.Join(r.t.TempDir(), "data")
	r.dump("", dir)
	defer os.RemoveAll(dir)
	files := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == stateRel {
			return fs.SkipDir
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		var b []byte
		if fi.Mode().IsRegular() {
			if b, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		files[rel+" "+fi.Mode().String()] = sha256.Sum256(b)
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return files
}

// check is what must hold after every kill (what says which): the boot
// state loads, every copy of it is one of allowed, GRUB boots the
// committed slot or an armed slot that holds the release, the data
// partition passes e2fsck -fn, and nothing outside the updater's state
// changed.
func (r *powerRig) check(what string, allowed []bootstate.State) {
	r.t.Helper()
	s := r.load()
	if !slices.Contains(allowed, s) {
		r.t.Fatalf("%s: boot state %+v is none the operation writes (%+v)", what, s, allowed)
	}
	blocks := r.envBlocks()
	for i, b := range blocks {
		env, err := grub.DecodeEnv(b)
		if err != nil {
			r.t.Fatalf("%s: %s: %v", what, grub.EnvPaths()[i], err)
		}
		if i%2 == 0 {
			if v, _ := env.Get("twinroot_editing"); v != "0" && v != "1" {
				r.t.Fatalf("%s: %s holds %q", what, grub.EnvPaths()[i], env)
			}
		} else if c := bootstate.FromEnv(env); !slices.Contains(allowed, c) {
			r.t.Fatalf("%s: %s holds %+v, a state the operation never writes", what, grub.EnvPaths()[i], c)
		}
	}
	slot, _ := s.GrubBoot()
	if slot != s.Committed && !r.holdsV2(slot) {
		r.t.Fatalf("%s: GRUB would boot armed slot %s, which does not hold the release (%+v)", what, slot, s)
	}
	if out, err := exec.Command("e2fsck", "-fn", r.dataPath()).CombinedOutput(); err != nil {
		r.t.Fatalf("%s: e2fsck -fn on the data partition: %v\n%s", what, err, out)
	}
	for name, sum := range r.regionSums(r.writableNow()) {
		if sum != r.sums[name] {
			r.t.Fatalf("%s: %s changed", what, name)
		}
	}
	if got := r.dataFiles(); !mapsEqual(got, r.files) {
		r.t.Fatalf("%s: files outside %s on the data partition changed:\nbefore %v\nafter  %v", what, stateRel, r.files, got)
	}
}

// writableNow is the slots record left out.
func (r *powerRig) writableNow() []bootstate.Slot {
	var w []bootstate.Slot
	for _, s := range []bootstate.Slot{partition.A, partition.B} {
		if _, ok := r.sums[r.layout.Slot(s).Label]; !ok {
			w = append(w, s)
		}
	}
	return w
}

func mapsEqual(a, b map[string][32]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// holdsV2 reports whether slot holds release 2.0.0 byte for byte.
func (r *powerRig) holdsV2(slot bootstate.Slot) bool {
	r.t.Helper()
	f, err := os.Open(r.file)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(r.v2image))
	if _, err := f.ReadAt(got, r.layout.Slot(slot).Start); err != nil {
		r.t.Fatal(err)
	}
	return bytes.Equal(got, r.v2image)
}

// killer draws kill instants: uniform over the time a whole run takes, the
// longest of the last runs that ended before their kill. A run that ends
// first is simply not a kill, so a loaded machine slows the campaign down
// but never fails it. Aimed at a write, three instants in four are drawn
// around edge instead, which moves later after a kill that landed before
// the write and earlier after one that landed in it or after it: it
// settles where the write starts, wherever the load puts it.
type killer struct {
	rand   *rand.Rand
	seed   int64
	spans  []time.Duration
	aim    bool
	edge   time.Duration
	kills  int
	ended  int
	phases map[string]int
	start  time.Time
}

func newKiller(seed int64, whole time.Duration, aim bool) *killer {
	// A boot-state save comes near the end of a run: start looking there.
	return &killer{rand: rand.New(rand.NewSource(seed)), seed: seed, spans: []time.Duration{whole}, aim: aim, edge: whole * 3 / 4, phases: map[string]int{}, start: time.Now()}
}

// next is the next kill instant.
func (k *killer) next() time.Duration {
	span := slices.Max(k.spans)
	if k.aim && k.rand.Intn(4) > 0 {
		return max(k.edge+time.Duration(k.rand.Int63n(int64(span/8)))-span/16, time.Millisecond)
	}
	return time.Duration(k.rand.Int63n(int64(span))) + time.Millisecond
}

// ranWhole notes a run that ended before its kill at at.
func (k *killer) ranWhole(at, took time.Duration) {
	k.ended++
	k.spans = append(k.spans, took)
	if len(k.spans) > 8 {
		k.spans = k.spans[1:]
	}
	k.moveEdge(at, false)
}

// killed notes a kill at at and the phase it landed in, and whether that
// was before the write.
func (k *killer) killed(at time.Duration, phase string, beforeWrite bool) {
	k.kills++
	k.phases[phase]++
	k.moveEdge(at, beforeWrite)
}

func (k *killer) moveEdge(at time.Duration, beforeWrite bool) {
	// Big steps first, to find the write; then small ones, to stay on it.
	step := slices.Max(k.spans) / 16
	if k.kills+k.ended > 16 {
		step /= 3
	}
	if beforeWrite && at >= k.edge {
		k.edge += step
	} else if !beforeWrite && at <= k.edge {
		k.edge = max(k.edge-step, 0)
	}
}

// giveUp is how many runs a test makes at most for n kills: far more than
// the about two runs a kill costs at worst.
func giveUp(n int) int { return 20*n + 20 }

// report logs the figures of a campaign in one line that make reliability
// reads: the operation and its test, kills, runs that ended first, seed,
// duration and kills per phase.
func (k *killer) report(t *testing.T, op string) {
	t.Helper()
	var names []string
	for p := range k.phases {
		names = append(names, p)
	}
	sort.Strings(names)
	var phases []string
	for _, p := range names {
		phases = append(phases, fmt.Sprintf("%s:%d", p, k.phases[p]))
	}
	t.Logf("power: op=%s test=%s kills=%d ended=%d seed=%d took=%s phases=%s", op, t.Name(), k.kills, k.ended, k.seed, time.Since(k.start).Round(time.Millisecond), strings.Join(phases, ","))
}

// writeSteps are the six block writes of one save of the boot state, in
// the order package grub makes them, and the blocks on the disk after
// each: steps[k] is the disk after the first k writes.
type writeSteps [7][4][]byte

var stepNames = [7]string{"before-write", "first-lock-set", "first-env-written", "first-copy-done", "second-lock-set", "second-env-written", "after-write"}

// stepsOf returns the blocks a save of next leaves on a disk that holds
// before, write by write.
func stepsOf(t *testing.T, before [4][]byte, next bootstate.State) writeSteps {
	t.Helper()
	on, err := grub.EncodeEnv(grub.Env{{Name: "twinroot_editing", Value: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	env, err := grub.EncodeEnv(next.Env())
	if err != nil {
		t.Fatal(err)
	}
	// Save writes first the copy Load does not choose now: copy 2 when
	// lock.1 lets Load take copy 1.
	first, second := 2, 0 // indexes of lock.2 and lock.1
	if lock, err := grub.DecodeEnv(before[0]); err != nil || lockValue(lock) != "0" {
		first, second = 0, 2
	}
	var s writeSteps
	cur := before
	s[0] = cur
	k := 1
	for _, c := range []int{first, second} {
		off := before[c]
		for _, w := range []struct {
			i int
			b []byte
		}{{c, on}, {c + 1, env}, {c, off}} {
			cur[w.i] = w.b
			s[k] = cur
			k++
		}
	}
	return s
}

func lockValue(e grub.Env) string { v, _ := e.Get("twinroot_editing"); return v }

// step is how many of the writes a disk's blocks show, or -1 when they
// are no stage of the save.
func (s writeSteps) step(blocks [4][]byte) int {
	for k, want := range s {
		if slices.EqualFunc(want[:], blocks[:], bytes.Equal) {
			return k
		}
	}
	return -1
}

// in is the rig for the subtest t.
func (r *powerRig) in(t *testing.T) *powerRig {
	c := *r
	c.t = t
	return &c
}
