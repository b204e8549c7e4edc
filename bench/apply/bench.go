package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twinroot/twinroot/bench/internal/harness"
	"github.com/twinroot/twinroot/internal/agent"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/install"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/s3test"
	"github.com/twinroot/twinroot/internal/state"
)

type options struct {
	harness.Common
	SizeMB  int64   // the image the peers (pipeline, RAUC) and the first apply after install are measured on
	SizesMB []int64 // images whose apply/limit and peak RSS are measured
	Runs    int
	Quiet   time.Duration // longest wait for a quiet machine before each step
}

func (o options) validate() error {
	switch {
	case o.SizeMB < 16:
		return fmt.Errorf("-size %d: want at least 16 MiB", o.SizeMB)
	case o.Runs < 1:
		return fmt.Errorf("-runs %d: want at least 1", o.Runs)
	case o.Quiet < 0:
		return fmt.Errorf("-quiet %s: want 0 or more", o.Quiet)
	}
	for _, s := range o.SizesMB {
		if s < 16 {
			return fmt.Errorf("-sizes: %d MiB: want at least 16 MiB", s)
		}
	}
	return nil
}

// Report is what one bench run measured. Times are in seconds, sizes in
// bytes.
type Report struct {
	Device     string       `json:"device"`
	SlotBOff   int64        `json:"slot_b_offset"`
	SlotBSize  int64        `json:"slot_b_size"`
	Server     string       `json:"server"`
	Runs       int          `json:"runs"`
	Cores      int          `json:"cores"`
	Sizes      []SizeReport `json:"sizes"`
	Pipeline   Measure      `json:"pipeline"`
	RAUC       Measure      `json:"rauc"`
	RAUCHTTP   Measure      `json:"rauc_http"`
	PeersMiB   int64        `json:"peers_image_mib"` // the image Pipeline, RAUC and FirstApply were measured on
	FirstApply FirstApply   `json:"first_apply_after_install"`
	Check      CheckReport  `json:"no_change_check"`
	// Disturbed counts the measures during which processes outside the
	// bench took more than disturbedShare of the machine.
	Disturbed int `json:"disturbed_measures"`
	Measures  int `json:"measures"`
}

// SizeReport is updater apply of one image beside each of its stages
// alone, the limit they set, and apply's peak RSS.
type SizeReport struct {
	Image  ImageReport `json:"image"`
	Apply  Measure     `json:"apply"`
	Stages []Measure   `json:"stages"`
	// Together is the four stages started at once as independent
	// processes: no stage waits on another, the machine's cores are shared.
	Together Measure     `json:"stages_at_once"`
	Limit    LimitReport `json:"limit"`
	// PeakRSS is the largest of apply's runs (wait4's ru_maxrss).
	PeakRSS int64 `json:"peak_rss_bytes"`
}

// ImageReport describes a release applied in the timed runs.
type ImageReport struct {
	MiB         int64  `json:"mib"` // of random data in its root
	Format      string `json:"format"`
	SlotBytes   int64  `json:"slot_bytes"`
	ObjectBytes int64  `json:"object_bytes"`
	Chunks      int    `json:"chunks"`
}

// Measure is one command's wall and CPU seconds per run. CPU is user +
// system of its processes (and of the servers it makes work: MinIO, the
// rauc service) and Kernel that of the kernel's threads meanwhile: a loop
// device's worker copies every byte written to it, and the block layer
// completes the writes. Other processes' CPU is left out, so a busy
// machine does not raise the limit.
type Measure struct {
	Name      string    `json:"name"`
	Command   string    `json:"command"`
	WallS     []float64 `json:"wall_s"`
	CPUS      []float64 `json:"cpu_s"`
	KernelS   []float64 `json:"kernel_cpu_s"`
	WallMed   float64   `json:"wall_median_s"`
	CPUMed    float64   `json:"cpu_median_s"`
	KernelMed float64   `json:"kernel_cpu_median_s"`
	// ServerCPUMed is MinIO's share of CPUMed (GET and apply).
	ServerCPUMed float64 `json:"server_cpu_median_s,omitempty"`
	// EngineMed is apply's time in its fetch engine (Stats.Elapsed: scan,
	// stream, read-back); the rest of its wall time starts the process,
	// checks the release, fetches the index and arms.
	EngineMed float64 `json:"engine_median_s,omitempty"`
	// ScanMed is apply's chunking of the running slot (Stats.Scan).
	ScanMed float64 `json:"scan_median_s,omitempty"`
	// ApplyOver is apply's median wall time over this one's.
	ApplyOver float64 `json:"apply_over"`
}

func (m *Measure) add(x measured) {
	m.WallS = append(m.WallS, x.wall.Seconds())
	m.CPUS = append(m.CPUS, x.cpu.Seconds())
	m.KernelS = append(m.KernelS, x.kernel.Seconds())
}

func (m *Measure) finish(applyWall float64) {
	m.WallMed, m.CPUMed, m.KernelMed = harness.Median(m.WallS), harness.Median(m.CPUS), harness.Median(m.KernelS)
	if m.WallMed > 0 {
		m.ApplyOver = applyWall / m.WallMed
	}
}

// LimitReport is the SPEC's limit for an apply: max(the slowest stage
// alone, the stages' CPU seconds summed over the cores), a stage's CPU
// being its processes' (MinIO's for the GET) and the kernel threads'.
type LimitReport struct {
	Slowest  string  `json:"slowest_stage"`
	SlowestS float64 `json:"slowest_stage_s"`
	CPUSumS  float64 `json:"stage_cpu_sum_s"`
	Cores    int     `json:"cores"`
	LimitS   float64 `json:"limit_s"`
	ApplyS   float64 `json:"apply_s"`
	Ratio    float64 `json:"apply_over_limit"` // target: 1.1 or less
	// EngineRatio is the fetch engine's time (the pipeline) over the limit.
	EngineRatio float64 `json:"engine_over_limit"`
	// TogetherRatio is the four stages' time when they run at once, as
	// independent processes, over the limit: what this machine gives when
	// nothing waits on anything, the floor of any pipeline's ratio.
	TogetherRatio float64 `json:"stages_at_once_over_limit"`
	// ApplyCPUS is apply's CPU seconds the way the stages' are counted.
	ApplyCPUS float64 `json:"apply_cpu_s"`
}

// FirstApply is the first apply after install, with slot A's index kept
// in the state directory as installer install seeds it (no scan of slot
// A), beside the same apply when the index is missing (a scan).
type FirstApply struct {
	Kept    Measure `json:"index_kept"`
	Scanned Measure `json:"index_missing"`
	// RunningBytes is what the scan reads: slot A's image.
	RunningBytes int64 `json:"running_bytes"`
}

// CheckReport counts the bytes of `updater check` on the TCP connection
// between the updater and MinIO.
type CheckReport struct {
	Counter      string `json:"counter"`
	FirstUp      int64  `json:"first_up_bytes"`
	FirstDown    int64  `json:"first_down_bytes"`
	NoChangeUp   int64  `json:"no_change_up_bytes"`
	NoChangeDown int64  `json:"no_change_down_bytes"`
	Connections  int64  `json:"no_change_connections"`
	NotModified  bool   `json:"not_modified"`
	Outcome      string `json:"outcome"`
}

// release is one built and published image.
type release struct {
	mib     int64
	dir     string // updater build output
	slot    string // slot.img
	object  string // slot.img.zst
	size    int64
	objSize int64
	sha256  string
	chunks  int
	channel string
	key     string // of slot.img.zst in the store, under the source prefix
	config  string // device.yaml for this channel
}

// bench holds the state of one run.
type bench struct {
	o        options
	work     string
	self     string
	updater  string
	key, pub string
	log      io.Writer
	disk     string // the sparse disk file dev maps
	dev      string // /dev/loopN
	layout   partition.Layout
	srv      *s3test.Server
	minioPID int
	env      []string // the server's credentials for the aws CLI and the Go stages
	rauc     *raucPeer
	v1       *release // in slot A

	measures, disturbed int // measures taken, and those other processes disturbed
}

const prefix = "apply" // the store prefix of every channel

func run(ctx context.Context, o options, log io.Writer) (rep Report, err error) {
	b := &bench{o: o, log: log}
	if os.Geteuid() != 0 {
		return rep, fmt.Errorf("losetup needs root")
	}
	if err := harness.NeedTools("losetup", "dd", "zstd", "sha256sum", "tee", "bash", "mksquashfs"); err != nil {
		return rep, err
	}
	if err := raucTools(); err != nil {
		return rep, err
	}
	aws, err := s3test.AWSBinary()
	if err != nil {
		return rep, err
	}
	if b.self, err = os.Executable(); err != nil {
		return rep, err
	}
	env, remove, err := harness.Prepare(ctx, o.Common, "twinroot-apply-bench-", b.logf)
	if err != nil {
		return rep, err
	}
	defer remove()
	b.work, b.updater, b.key, b.pub = env.Work, env.Updater, env.Key, env.Pub

	// Releases: v1 in slot A, as large as the peers' image (other random
	// bytes, so nothing is reused, and a scan of slot A costs what it
	// would on a device), and one release per measured size.
	v1, err := b.build(ctx, "v1", o.SizeMB, 1, "1.0.0", 1)
	if err != nil {
		return rep, err
	}
	// installer install takes only a release signed by a key its image
	// trusts.
	if _, err := b.run(ctx, nil, b.updater, "sign", "--image", v1.dir, "--channel", v1.channel, "--key", b.key); err != nil {
		return rep, err
	}
	b.v1 = v1
	sizes := o.SizesMB
	if !slices.Contains(sizes, o.SizeMB) {
		sizes = append([]int64{o.SizeMB}, sizes...)
	}
	rels := map[int64]*release{}
	var biggest int64
	for _, mib := range sizes {
		r, err := b.build(ctx, fmt.Sprintf("size%d", mib), mib, uint64(mib)+1, "2.0.0", 2)
		if err != nil {
			return rep, err
		}
		rels[mib] = r
		biggest = max(biggest, r.size)
	}

	if err := b.setupDisk(ctx, v1, biggest); err != nil {
		return rep, err
	}
	defer b.detach()

	b.logf("starting minio on 127.0.0.1")
	if err := os.RemoveAll(filepath.Join(b.work, "minio")); err != nil {
		return rep, err
	}
	var stop func()
	b.srv, stop, err = s3test.Launch("minio", filepath.Join(b.work, "minio"))
	if err != nil {
		return rep, err
	}
	defer stop()
	b.env = append(b.srv.Env(), "HOME="+filepath.Join(b.work, "minio"))
	if b.minioPID, err = findPID("minio", b.srv.DataDir); err != nil {
		return rep, err
	}
	for _, mib := range sizes {
		if err := b.publish(ctx, rels[mib], b.srv.Endpoint); err != nil {
			return rep, err
		}
	}

	main := rels[o.SizeMB]
	if b.rauc, err = b.startRAUC(ctx, main); err != nil {
		return rep, err
	}
	defer b.rauc.stop()
	rep.Device, rep.SlotBOff, rep.SlotBSize, rep.Server = b.dev, b.layout.B.Start, b.layout.B.Size, "minio"
	rep.Runs, rep.Cores, rep.PeersMiB = o.Runs, runtime.NumCPU(), o.SizeMB
	for _, mib := range sizes {
		sr, err := b.measureSize(ctx, rels[mib], mib == o.SizeMB, aws, &rep)
		if err != nil {
			return rep, err
		}
		rep.Sizes = append(rep.Sizes, sr)
	}
	rep.Disturbed, rep.Measures = b.disturbed, b.measures
	if rep.Check, err = b.measureCheck(ctx, main); err != nil {
		return rep, err
	}
	return rep, nil
}

// build generates a root of mib MiB of random files and builds it into an
// uncompressed slot image; the root is removed afterwards.
func (b *bench) build(ctx context.Context, name string, mib int64, seed uint64, version string, serial uint64) (*release, error) {
	root := filepath.Join(b.work, name+"-root")
	out := filepath.Join(b.work, name)
	for _, d := range []string{root, out} {
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
	}
	defer os.RemoveAll(root)
	b.logf("building %s: %d MiB of random data, version %s", name, mib, version)
	if err := randomRoot(root, mib<<20, seed); err != nil {
		return nil, err
	}
	stdout, err := b.run(ctx, nil, b.updater, "build", "--rootfs", root, "--trust", b.pub, "--version", version,
		"--serial", strconv.FormatUint(serial, 10), "--compression", "none", "--out", out, "-o", "json")
	if err != nil {
		return nil, err
	}
	br, err := harness.BuildOutput(stdout)
	if err != nil {
		return nil, err
	}
	im := br.Manifest.Image
	if im.Size%4096 != 0 {
		return nil, fmt.Errorf("%s: slot.img is %d bytes, not a multiple of 4096 (dd oflag=direct needs whole blocks)", name, im.Size)
	}
	return &release{mib: mib, dir: out, slot: filepath.Join(out, "slot.img"), object: filepath.Join(out, "slot.img.zst"),
		size: im.Size, objSize: im.CompressedSize, sha256: im.SHA256, chunks: br.Chunks, channel: name}, nil
}

// randomRoot writes size bytes of random files (the kernel and initrd
// among them, so updater build accepts the root).
func randomRoot(dir string, size int64, seed uint64) error {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24), 't', 'w', 'i', 'n'})
	buf := make([]byte, 4<<20)
	write := func(name string, n int64) error {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		for left := n; left > 0; {
			k := min(left, int64(len(buf)))
			r.Read(buf[:k])
			if _, err := f.Write(buf[:k]); err != nil {
				f.Close()
				return fmt.Errorf("generate root: %w", err)
			}
			left -= k
		}
		return f.Close()
	}
	kernel := min(size/4, 8<<20)
	if err := write("boot/vmlinuz", kernel); err != nil {
		return err
	}
	if err := write("boot/initrd.img", 1<<20); err != nil {
		return err
	}
	for i, left := 0, size-kernel-1<<20; left > 0; i++ {
		n := min(left, 64<<20)
		if err := write(fmt.Sprintf("usr/lib/blobs/blob%04d.bin", i), n); err != nil {
			return err
		}
		left -= n
	}
	return nil
}

// setupDisk installs v1 on a sparse disk file whose slots hold the biggest
// image and attaches it to a loop device.
func (b *bench) setupDisk(ctx context.Context, v1 *release, biggest int64) error {
	grubDir := filepath.Join(b.work, "grub")
	b.logf("building GRUB images")
	if err := grub.BuildImages(ctx, grubDir); err != nil {
		return err
	}
	slot := (biggest + 16<<20 + 1<<20 - 1) &^ (1<<20 - 1)
	disk := filepath.Join(b.work, "disk.img")
	b.disk = disk
	os.Remove(disk)
	f, err := os.Create(disk)
	if err != nil {
		return err
	}
	err = f.Truncate(partition.MinDiskSize(slot))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create disk: %w", err)
	}
	b.logf("installing v1 on %s (slots of %d MiB)", disk, slot>>20)
	if _, err := install.Install(ctx, install.Options{Disk: disk, Image: v1.dir, GrubDir: grubDir, SlotSize: slot}); err != nil {
		return err
	}
	out, err := b.run(ctx, nil, "losetup", "--find", "--show", "--direct-io=on", disk)
	if err != nil {
		return err
	}
	b.dev = strings.TrimSpace(string(out))
	b.logf("disk attached to %s", b.dev)
	d, err := bootstate.OpenDisk(b.dev)
	if err != nil {
		return err
	}
	defer d.Close()
	b.layout = d.Layout
	if b.layout.B.Size < biggest {
		return fmt.Errorf("slot b of %s holds %d bytes, the image is %d", b.dev, b.layout.B.Size, biggest)
	}
	return nil
}

func (b *bench) detach() {
	if b.dev == "" {
		return
	}
	if out, err := exec.Command("losetup", "--detach", b.dev).CombinedOutput(); err != nil {
		b.logf("losetup --detach %s: %v %s", b.dev, err, out)
		return
	}
	b.logf("detached %s", b.dev)
}

// publish uploads the release to its own channel and writes the device
// config that points at it through endpoint.
func (b *bench) publish(ctx context.Context, r *release, endpoint string) error {
	b.logf("publishing %s (%.0f MB)", r.channel, float64(r.objSize)/1e6)
	stdout, err := b.run(ctx, b.env, b.updater, "publish", "--image", r.dir, "--channel", r.channel,
		"--key", b.key, "--to", b.srv.URL(prefix), "--endpoint", b.srv.Endpoint, "-o", "json")
	if err != nil {
		return err
	}
	pr, err := harness.PublishOutput(stdout)
	if err != nil {
		return err
	}
	for _, k := range pr.Objects {
		if strings.HasSuffix(k, "/slot.img.zst") {
			r.key = k
		}
	}
	if r.key == "" {
		return fmt.Errorf("updater publish: no slot.img.zst among %q", pr.Objects)
	}
	r.config, err = b.writeConfig(r.channel, endpoint)
	return err
}

func (b *bench) writeConfig(channel, endpoint string) (string, error) {
	path := filepath.Join(b.work, channel+"-"+strings.NewReplacer(":", "-", "/", "").Replace(endpoint)+".yaml")
	cfg := fmt.Sprintf(`source: %s
endpoint: %s
region: %s
credentials:
  access_key_id: %s
  secret_access_key: %s
channel: %s
reboot:
  policy: next-boot
`, b.srv.URL(prefix), endpoint, b.srv.Region, b.srv.AccessKey, b.srv.SecretKey, channel)
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

// measured is what a finished command cost.
type measured struct {
	wall, cpu time.Duration
	kernel    time.Duration // the kernel threads' CPU meanwhile
	machine   time.Duration // every process's and kernel thread's CPU meanwhile
	maxRSS    int64
	stdout    []byte
}

// measure runs a command and reads its rusage (its own and that of the
// children it waited for), the kernel threads' and the machine's CPU time
// while it ran.
func (b *bench) measure(ctx context.Context, env []string, name string, args ...string) (measured, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	k0, err := kernelCPU()
	if err != nil {
		return measured{}, err
	}
	m0, err := machineCPU()
	if err != nil {
		return measured{}, err
	}
	start := time.Now()
	err = cmd.Run()
	m := measured{wall: time.Since(start), stdout: stdout.Bytes()}
	m1, merr := machineCPU()
	k1, kerr := kernelCPU()
	if err == nil {
		err = errors.Join(merr, kerr)
	}
	m.machine, m.kernel = m1-m0, k1-k0
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return m, fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args, " "), err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		m.maxRSS = ru.Maxrss << 10
	}
	return m, nil
}

// disturbedShare is the share of the machine that processes outside a
// measure may take before the measure counts as disturbed.
const disturbedShare = 0.15

// retries is how often a measure that other processes disturbed is taken
// again.
const retries = 2

// settled takes a measure on a quiet machine: run is called once the
// machine is quiet, and again (at most retries times) while processes
// outside the measure took more than disturbedShare of the machine
// meanwhile (run's CPU must hold the servers' it made work). It counts the
// measure, and whether the one kept was disturbed; the caller keeps what
// the last call of run measured.
func (b *bench) settled(ctx context.Context, what string, run func() (measured, error)) error {
	for attempt := 0; ; attempt++ {
		if err := b.waitQuiet(ctx); err != nil {
			return err
		}
		m, err := run()
		if err != nil {
			return err
		}
		share := (m.machine - m.cpu - m.kernel).Seconds() / (m.wall.Seconds() * float64(runtime.NumCPU()))
		if share <= disturbedShare || attempt == retries {
			b.measures++
			if share > disturbedShare {
				b.disturbed++
			}
			return nil
		}
		b.logf("%s: other processes took %.0f%% of the machine meanwhile; once more", what, 100*share)
	}
}

// waitQuiet waits, up to -quiet, until the machine has been idle for one
// second (other processes taking less than disturbedShare of it): QEMU
// tests or builds running beside the bench slow the measures unevenly.
func (b *bench) waitQuiet(ctx context.Context) error {
	deadline := time.Now().Add(b.o.Quiet)
	for time.Now().Before(deadline) {
		m0, err := machineCPU()
		if err != nil {
			return err
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
		m1, err := machineCPU()
		if err != nil {
			return err
		}
		if (m1 - m0).Seconds() < disturbedShare*float64(runtime.NumCPU()) {
			return nil
		}
	}
	return nil
}

// serverCPU returns MinIO's CPU time so far.
func (b *bench) serverCPU() (time.Duration, error) { return procCPU(b.minioPID) }

// reset makes slot B ready for a full apply again: the boot state is the
// installed one and the state directory (journal, last check) is gone.
// With keepIndex the state directory holds slot A's index, as installer
// install seeds it, so apply does not scan slot A.
func (b *bench) reset(r *release, keepIndex bool) (stateDir string, err error) {
	stateDir = filepath.Join(b.work, "state-"+r.channel)
	if err := os.RemoveAll(stateDir); err != nil {
		return "", err
	}
	if keepIndex {
		idx, err := os.ReadFile(filepath.Join(b.v1.dir, "chunks.idx"))
		if err != nil {
			return "", err
		}
		if err := os.MkdirAll(stateDir, 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(stateDir, state.SlotIndexName(string(partition.A))), idx, 0o644); err != nil {
			return "", err
		}
	}
	d, err := bootstate.OpenDisk(b.dev)
	if err != nil {
		return "", err
	}
	defer d.Close()
	if err := d.Save(bootstate.Initial()); err != nil {
		return "", fmt.Errorf("reset the boot state: %w", err)
	}
	return stateDir, nil
}

// applyRun is one updater apply: its cost (MinIO's CPU included) and its
// result.
type applyRun struct {
	measured
	result agent.ApplyResult
	server time.Duration
}

// apply resets slot B and runs updater apply of r; it checks that the
// image was fetched (all but a few KiB) and slot B armed.
func (b *bench) apply(ctx context.Context, r *release, keepIndex bool) (applyRun, error) {
	var a applyRun
	stateDir, err := b.reset(r, keepIndex)
	if err != nil {
		return a, err
	}
	s0, err := b.serverCPU()
	if err != nil {
		return a, err
	}
	// Started by a small process of its own, so that its peak RSS is its
	// own (runMeasured).
	usage := filepath.Join(b.work, "apply.usage")
	a.measured, err = b.measure(ctx, nil, b.self, stageArg, stageRun, usage, b.updater, "apply", "--disk", b.dev, "--running-slot", "a",
		"--config", r.config, "--state-dir", stateDir, "--reboot", "next-boot", "-o", "json")
	if err != nil {
		return a, err
	}
	if a.wall, a.cpu, a.maxRSS, err = readMeasured(usage); err != nil {
		return a, err
	}
	s1, err := b.serverCPU()
	if err != nil {
		return a, err
	}
	a.server = s1 - s0
	a.cpu += a.server
	var round agent.RoundResult
	if err := json.Unmarshal(a.stdout, &round); err != nil {
		return a, fmt.Errorf("updater apply -o json: %w: %q", err, a.stdout)
	}
	if round.Apply == nil {
		return a, fmt.Errorf("updater apply applied nothing: %+v", round.Check)
	}
	ar := round.Apply
	a.result = *ar
	switch {
	case ar.State.Trial != partition.B:
		return a, fmt.Errorf("updater apply left boot state %+v, want slot b on trial", ar.State)
	case ar.Stats.Skipped != 0 || ar.Stats.Fetched+ar.Stats.Reused != r.size || ar.Stats.Fetched < r.size*99/100:
		// slot A shares a few KiB of squashfs's own blocks with r.
		return a, fmt.Errorf("updater apply was not a full fetch: %+v", ar.Stats)
	}
	return a, nil
}

// measureSize times apply of r and each of its stages alone, and with
// peers the shell pipeline, rauc install and the first apply after install
// without slot A's index; runs are interleaved, the order rotating.
func (b *bench) measureSize(ctx context.Context, r *release, peers bool, aws string, rep *Report) (SizeReport, error) {
	sr := SizeReport{Image: ImageReport{MiB: r.mib, Format: "squashfs, uncompressed (updater build --compression none), of random data",
		SlotBytes: r.size, ObjectBytes: r.objSize, Chunks: r.chunks}}
	url := b.srv.URL(prefix)
	off := b.layout.B.Start
	if r.size > b.layout.B.Size {
		return sr, fmt.Errorf("%s does not fit slot b", r.slot)
	}
	dd := []string{"if=" + r.slot, "of=" + b.dev, "bs=4M", "iflag=fullblock", "oflag=direct,seek_bytes",
		fmt.Sprintf("seek=%d", off), "conv=fsync", "status=none"}
	sumFile := filepath.Join(b.work, "pipeline.sha256")
	// The stages alone, at once: $1 is this program, then the GET's URL and
	// key, slot.img.zst, slot.img, and dd's arguments.
	const togetherScript = `set -e
"$1" -stage get "$2" "$3" >/dev/null & get=$!
"$1" -stage unzstd "$4" >/dev/null & unzstd=$!
"$1" -stage sha256 "$5" >/dev/null & hash=$!
shift 5
dd "$@"
wait $get; wait $unzstd; wait $hash`
	const script = `set -o pipefail
"$1" --endpoint-url "$6" s3 cp --only-show-errors "$2" - | zstd -d -c -q | tee >(sha256sum > "$3") |
	dd of="$4" bs=4M iflag=fullblock oflag=direct,seek_bytes seek="$5" conv=fsync status=none
wait $!`
	apply := Measure{Name: "updater apply", Command: "updater apply --disk " + b.dev + " --running-slot a, slot A's index kept (no scan)"}
	scanned := Measure{Name: "updater apply, slot A scanned", Command: "updater apply without slot A's index: it chunks slot A first"}
	get := Measure{Name: "GET to /dev/null", Command: "Go GET (the updater's S3 client), plus MinIO's CPU"}
	unzstd := Measure{Name: "zstd decompression", Command: "Go klauspost/compress zstd, one goroutine"}
	hash := Measure{Name: "SHA-256", Command: "Go crypto/sha256 of slot.img"}
	together := Measure{Name: "the four stages at once", Command: "the four stages alone, started together as independent processes"}
	write := Measure{Name: "dd oflag=direct", Command: "dd bs=4M oflag=direct,seek_bytes seek=slot b conv=fsync"}
	pipe := Measure{Name: "shell pipeline", Command: "aws s3 cp - | zstd -d | tee >(sha256sum) | dd oflag=direct"}
	rauc := Measure{Name: "rauc install (plain bundle, local file)", Command: fmt.Sprintf(
		"rauc install of a local %.1f MB plain bundle into a raw slot over slot b's bytes (rauc service, bootloader=noop)", mb(b.rauc.bytes))}
	raucHTTP := Measure{Name: "rauc install (plain bundle, http from MinIO)",
		Command: "rauc install of a presigned MinIO URL of the same bundle: downloaded whole, then installed; plus MinIO's CPU"}
	var applyServer, engine, scan, scannedEngine, scannedScan []float64
	// timed runs a stage alone on a quiet machine, with MinIO's CPU if
	// server, and checks its output.
	timed := func(m *Measure, server bool, check func([]byte) error, env []string, name string, args ...string) error {
		var x measured
		err := b.settled(ctx, m.Name, func() (measured, error) {
			s0, err := b.serverCPU()
			if err != nil {
				return x, err
			}
			if x, err = b.measure(ctx, env, name, args...); err != nil {
				return x, err
			}
			s1, err := b.serverCPU()
			if err != nil {
				return x, err
			}
			if server {
				x.cpu += s1 - s0
			}
			return x, check(x.stdout)
		})
		if err != nil {
			return err
		}
		m.add(x)
		return nil
	}
	// applied takes one apply on a quiet machine.
	applied := func(keepIndex bool) (applyRun, error) {
		var a applyRun
		err := b.settled(ctx, "updater apply", func() (measured, error) {
			var err error
			a, err = b.apply(ctx, r, keepIndex)
			return a.measured, err
		})
		return a, err
	}
	want := func(what, w string) func([]byte) error {
		return func(out []byte) error {
			if got := strings.TrimSpace(string(out)); got != w {
				return fmt.Errorf("%s gave %q, want %s", what, got, w)
			}
			return nil
		}
	}
	type step struct {
		name string
		do   func() error
	}
	steps := []step{
		{"apply", func() error {
			a, err := applied(true)
			if err != nil {
				return err
			}
			apply.add(a.measured)
			applyServer = append(applyServer, a.server.Seconds())
			engine = append(engine, a.result.Stats.Elapsed.Seconds())
			scan = append(scan, a.result.Stats.Scan.Seconds())
			sr.PeakRSS = max(sr.PeakRSS, a.maxRSS)
			return nil
		}},
		{"GET", func() error {
			return timed(&get, true, want("GET of "+r.key, strconv.FormatInt(r.objSize, 10)), b.env, b.self, stageArg, stageGet, url, r.key)
		}},
		{"zstd -d", func() error {
			return timed(&unzstd, false, want("decompression", strconv.FormatInt(r.size, 10)), nil, b.self, stageArg, stageUnzstd, r.object)
		}},
		{"sha256", func() error {
			return timed(&hash, false, want("SHA-256 of slot.img", r.sha256), nil, b.self, stageArg, stageSHA256, r.slot)
		}},
		{"dd", func() error {
			return timed(&write, false, func([]byte) error { return nil }, nil, "dd", dd...)
		}},
		{"stages at once", func() error {
			return timed(&together, true, func([]byte) error { return nil }, b.env, "bash", append([]string{"-c", togetherScript, "bash",
				b.self, url, r.key, r.object, r.slot}, dd...)...)
		}},
	}
	if peers {
		steps = append(steps,
			step{"apply, scanning slot A", func() error {
				a, err := applied(false)
				if err != nil {
					return err
				}
				scanned.add(a.measured)
				scannedEngine = append(scannedEngine, a.result.Stats.Elapsed.Seconds())
				scannedScan = append(scannedScan, a.result.Stats.Scan.Seconds())
				sr.PeakRSS = max(sr.PeakRSS, a.maxRSS)
				return nil
			}},
			step{"pipeline", func() error {
				os.Remove(sumFile)
				check := func([]byte) error {
					sum, err := os.ReadFile(sumFile)
					if err != nil {
						return err
					}
					if got, _, _ := strings.Cut(string(sum), " "); got != r.sha256 {
						return fmt.Errorf("the pipeline wrote bytes with SHA-256 %s, the manifest says %s", got, r.sha256)
					}
					return nil
				}
				return timed(&pipe, true, check, b.env, "bash", "-c", script, "bash", aws, url+"/"+r.key, sumFile, b.dev, strconv.FormatInt(off, 10), b.srv.Endpoint)
			}},
			step{"rauc install", func() error { return b.timedRAUC(ctx, &rauc, r, false) }},
			step{"rauc install http", func() error { return b.timedRAUC(ctx, &raucHTTP, r, true) }},
		)
	}
	for i := range b.o.Runs {
		k := i % len(steps)
		for _, st := range append(slices.Clone(steps[k:]), steps[:k]...) {
			b.logf("%d MiB, run %d/%d: %s", r.mib, i+1, b.o.Runs, st.name)
			if err := st.do(); err != nil {
				return sr, err
			}
		}
	}
	apply.finish(0)
	apply.ServerCPUMed, apply.EngineMed, apply.ScanMed = harness.Median(applyServer), harness.Median(engine), harness.Median(scan)
	apply.ApplyOver = 1
	sr.Apply = apply
	for _, m := range []*Measure{&get, &unzstd, &hash, &write} {
		m.finish(apply.WallMed)
		sr.Stages = append(sr.Stages, *m)
	}
	l := LimitReport{Cores: runtime.NumCPU(), ApplyS: apply.WallMed, ApplyCPUS: apply.CPUMed + apply.KernelMed}
	for _, s := range sr.Stages {
		if s.WallMed > l.SlowestS {
			l.Slowest, l.SlowestS = s.Name, s.WallMed
		}
		l.CPUSumS += s.CPUMed + s.KernelMed
	}
	l.LimitS = max(l.SlowestS, l.CPUSumS/float64(l.Cores))
	l.Ratio = apply.WallMed / l.LimitS
	l.EngineRatio = apply.EngineMed / l.LimitS
	together.finish(apply.WallMed)
	sr.Together = together
	l.TogetherRatio = together.WallMed / l.LimitS
	sr.Limit = l
	if peers {
		pipe.finish(apply.WallMed)
		rauc.finish(apply.WallMed)
		raucHTTP.finish(apply.WallMed)
		scanned.finish(apply.WallMed)
		scanned.EngineMed, scanned.ScanMed = harness.Median(scannedEngine), harness.Median(scannedScan)
		rep.Pipeline, rep.RAUC, rep.RAUCHTTP = pipe, rauc, raucHTTP
		rep.FirstApply = FirstApply{Kept: apply, Scanned: scanned, RunningBytes: b.v1.size}
	}
	return sr, nil
}

// timedRAUC times one rauc install on a quiet machine.
func (b *bench) timedRAUC(ctx context.Context, m *Measure, r *release, remote bool) error {
	var x measured
	err := b.settled(ctx, m.Name, func() (measured, error) {
		var err error
		x, err = b.raucInstall(ctx, r, remote)
		return x, err
	})
	if err != nil {
		return err
	}
	m.add(x)
	return nil
}

// measureCheck counts the bytes of two checks through a TCP proxy: the
// first fetches latest.json, the second is answered 304.
func (b *bench) measureCheck(ctx context.Context, r *release) (CheckReport, error) {
	rep := CheckReport{Counter: "TCP proxy on 127.0.0.1 between updater and MinIO (both directions, HTTP headers included)"}
	target := strings.TrimPrefix(b.srv.Endpoint, "http://")
	p, err := startProxy(target)
	if err != nil {
		return rep, err
	}
	defer p.Close()
	cfg, err := b.writeConfig(r.channel, "http://"+p.Addr())
	if err != nil {
		return rep, err
	}
	stateDir := filepath.Join(b.work, "state-check")
	if err := os.RemoveAll(stateDir); err != nil {
		return rep, err
	}
	check := func() (agent.CheckResult, error) {
		var cr agent.CheckResult
		out, err := b.run(ctx, nil, b.updater, "check", "--disk", b.dev, "--running-slot", "a",
			"--config", cfg, "--state-dir", stateDir, "-o", "json")
		if err != nil {
			return cr, err
		}
		if err := json.Unmarshal(out, &cr); err != nil {
			return cr, fmt.Errorf("updater check -o json: %w", err)
		}
		return cr, nil
	}
	b.logf("no-change check through a counting proxy")
	if _, err := check(); err != nil {
		return rep, err
	}
	rep.FirstUp, rep.FirstDown, _ = p.Reset()
	cr, err := check()
	if err != nil {
		return rep, err
	}
	rep.NoChangeUp, rep.NoChangeDown, rep.Connections = p.Reset()
	rep.NotModified, rep.Outcome = cr.NotModified, cr.Outcome
	if !cr.NotModified {
		return rep, fmt.Errorf("the second check was not a conditional GET answered 304: %+v", cr)
	}
	return rep, nil
}

// run runs a command with env added to the environment and returns its
// standard output; the error carries its standard error.
func (b *bench) run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	m, err := b.measure(ctx, env, name, args...)
	return m.stdout, err
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "bench: "+format+"\n", args...)
}

// findPID finds the process whose executable is named name and whose
// command line holds arg (the server s3test started for this run).
func findPID(name, arg string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if filepath.Base(args[0]) == name && slices.Contains(args, arg) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no %s process serving %s", name, arg)
}

// machineCPU reads the time all CPUs of the machine spent busy (user,
// nice, system, irq and softirq: everything but idle, iowait and steal)
// from /proc/stat.
func machineCPU() (time.Duration, error) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("machine CPU time: %w", err)
	}
	line, _, _ := strings.Cut(string(stat), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("machine CPU time: unexpected /proc/stat line %q", line)
	}
	t, ok := sumTicks(f[1], f[2], f[3], f[6], f[7]) // user, nice, system, irq, softirq
	if !ok {
		return 0, fmt.Errorf("machine CPU time: bad /proc/stat line %q", line)
	}
	return t, nil
}

// sumTicks adds times counted in USER_HZ, the unit of /proc on Linux.
func sumTicks(fields ...string) (time.Duration, bool) {
	const clockTicks = 100
	var ticks int64
	for _, s := range fields {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, false
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, true
}

// procCPU reads a process's user and system time, and that of the
// children it waited for (a service's helpers), from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("server CPU time: %w", err)
	}
	// Fields after the command name, which may hold spaces: state is the
	// first, utime the 12th, stime the 13th, cutime and cstime follow.
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 15 {
		return 0, fmt.Errorf("server CPU time: short /proc/%d/stat", pid)
	}
	t, ok := sumTicks(f[11:15]...)
	if !ok {
		return 0, fmt.Errorf("server CPU time: bad /proc/%d/stat", pid)
	}
	return t, nil
}

// pfKthread marks a kernel thread in /proc/PID/stat's flags (PF_KTHREAD).
const pfKthread = 0x00200000

// kernelCPU sums the CPU time of the kernel's threads (loop devices'
// workers, block and writeback workers) from /proc/PID/stat. A worker that
// exits meanwhile takes its time with it; they rarely do.
func kernelCPU() (time.Duration, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("kernel CPU time: %w", err)
	}
	var total time.Duration
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 13 {
			continue
		}
		flags, err := strconv.ParseUint(f[6], 10, 64)
		if err != nil || flags&pfKthread == 0 {
			continue
		}
		if t, ok := sumTicks(f[11], f[12]); ok {
			total += t
		}
	}
	return total, nil
}
