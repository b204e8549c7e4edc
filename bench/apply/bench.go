package main

import (
	"bytes"
	"context"
	"encoding/json"
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
)

type options struct {
	harness.Common
	SizeMB     int64
	RSSSizesMB []int64
	Runs       int
}

func (o options) validate() error {
	switch {
	case o.SizeMB < 16:
		return fmt.Errorf("-size %d: want at least 16 MiB", o.SizeMB)
	case o.Runs < 1:
		return fmt.Errorf("-runs %d: want at least 1", o.Runs)
	}
	for _, s := range o.RSSSizesMB {
		if s < 16 {
			return fmt.Errorf("-sizes: %d MiB: want at least 16 MiB", s)
		}
	}
	return nil
}

// Report is what one bench run measured. Times are in seconds, sizes in
// bytes.
type Report struct {
	Image    ImageReport `json:"image"`
	Runs     int         `json:"runs"`
	Apply    Measure     `json:"apply"`
	Stages   []Measure   `json:"stages"`
	Limit    LimitReport `json:"limit"`
	Pipeline Measure     `json:"pipeline"`
	RAUC     Measure     `json:"rauc"`
	RAUCHTTP Measure     `json:"rauc_http"`
	RSS      []RSSReport `json:"peak_rss"`
	Check    CheckReport `json:"no_change_check"`
}

// ImageReport describes the release applied in the timed runs and where.
type ImageReport struct {
	Format      string `json:"format"`
	SlotBytes   int64  `json:"slot_bytes"`
	ObjectBytes int64  `json:"object_bytes"`
	Chunks      int    `json:"chunks"`
	Device      string `json:"device"`
	SlotBOffset int64  `json:"slot_b_offset"`
	SlotBSize   int64  `json:"slot_b_size"`
	Server      string `json:"server"`
}

// Measure is one command's wall and CPU (user + system) seconds per run:
// its processes' own, and the whole machine's while it ran, which also
// counts the kernel's threads (a loop device's worker copies every byte
// written to it).
type Measure struct {
	Name       string    `json:"name"`
	Command    string    `json:"command"`
	WallS      []float64 `json:"wall_s"`
	CPUS       []float64 `json:"cpu_s"`
	MachineS   []float64 `json:"machine_cpu_s"`
	WallMed    float64   `json:"wall_median_s"`
	CPUMed     float64   `json:"cpu_median_s"`
	MachineMed float64   `json:"machine_cpu_median_s"`
	// ServerCPUMed is MinIO's share of CPUMed (GET and apply).
	ServerCPUMed float64 `json:"server_cpu_median_s,omitempty"`
	// ApplyOver is apply's median wall time over this one's.
	ApplyOver float64 `json:"apply_over"`
}

func (m *Measure) add(wall, cpu, machine time.Duration) {
	m.WallS = append(m.WallS, wall.Seconds())
	m.CPUS = append(m.CPUS, cpu.Seconds())
	m.MachineS = append(m.MachineS, machine.Seconds())
}

func (m *Measure) finish(applyWall float64) {
	m.WallMed, m.CPUMed, m.MachineMed = harness.Median(m.WallS), harness.Median(m.CPUS), harness.Median(m.MachineS)
	if m.WallMed > 0 {
		m.ApplyOver = applyWall / m.WallMed
	}
}

// LimitReport is the SPEC's limit for an apply: max(the slowest stage
// alone, the stages' CPU seconds summed over the cores). The stages' CPU
// is what the machine spent while each ran: the device write's is mostly
// the loop device's kernel worker, which no process's own time counts.
// ProcessLimitS is the same limit with the stages' own CPU only.
type LimitReport struct {
	Slowest       string  `json:"slowest_stage"`
	SlowestS      float64 `json:"slowest_stage_s"`
	CPUSumS       float64 `json:"stage_cpu_sum_s"`
	MachineSumS   float64 `json:"stage_machine_cpu_sum_s"`
	Cores         int     `json:"cores"`
	LimitS        float64 `json:"limit_s"`
	ProcessLimitS float64 `json:"process_cpu_limit_s"`
	ApplyS        float64 `json:"apply_s"`
	Ratio         float64 `json:"apply_over_limit"` // target: 1.1 or less
	ProcessRatio  float64 `json:"apply_over_process_cpu_limit"`
	ApplyScan     float64 `json:"apply_scan_s"`   // apply's chunking of the running slot
	ApplyVfy      float64 `json:"apply_verify_s"` // apply's read-back of chunks an earlier run wrote
	// ApplyEngine is apply's time in its fetch engine (scan, pipeline,
	// read-back); the rest of its wall time is the start of the process,
	// the check of the release, the index, the arm.
	ApplyEngine float64 `json:"apply_engine_s"`
}

// RSSReport is apply's peak resident set for one image size.
type RSSReport struct {
	ImageMiB  int64   `json:"image_mib"`
	SlotBytes int64   `json:"slot_bytes"`
	PeakRSS   int64   `json:"peak_rss_bytes"` // the largest of Runs
	Runs      int     `json:"runs"`
	ApplyS    float64 `json:"apply_s"` // median
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

	// Releases: v1 in slot A (other random bytes, so nothing is reused),
	// and one release per measured size.
	v1, err := b.build(ctx, "v1", 16, 1, "1.0.0", 1)
	if err != nil {
		return rep, err
	}
	sizes := []int64{o.SizeMB}
	for _, s := range o.RSSSizesMB {
		if !slices.Contains(sizes, s) {
			sizes = append(sizes, s)
		}
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
	rep.Image = ImageReport{
		Format:    "squashfs, uncompressed (updater build --compression none), of random data",
		SlotBytes: main.size, ObjectBytes: main.objSize, Chunks: main.chunks,
		Device: b.dev, SlotBOffset: b.layout.B.Start, SlotBSize: b.layout.B.Size, Server: "minio",
	}
	rep.Runs = o.Runs
	peak, err := b.measureApply(ctx, main, aws, &rep)
	if err != nil {
		return rep, err
	}
	for _, mib := range o.RSSSizesMB {
		r := rels[mib]
		rr := RSSReport{ImageMiB: mib, SlotBytes: r.size}
		if mib == o.SizeMB {
			rr.PeakRSS, rr.Runs, rr.ApplyS = peak, o.Runs, rep.Apply.WallMed
		} else {
			b.logf("peak RSS: apply of %d MiB", mib)
			a, err := b.apply(ctx, r)
			if err != nil {
				return rep, err
			}
			rr.PeakRSS, rr.Runs, rr.ApplyS = a.maxRSS, 1, a.wall.Seconds()
		}
		rep.RSS = append(rep.RSS, rr)
	}
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
	out, err := b.run(ctx, nil, "losetup", "--find", "--show", disk)
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
	machine   time.Duration // every process's and kernel thread's CPU meanwhile
	maxRSS    int64
	stdout    []byte
}

// measure runs a command and reads its rusage (its own and that of the
// children it waited for) and the machine's CPU time while it ran.
func (b *bench) measure(ctx context.Context, env []string, name string, args ...string) (measured, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	m0, err := machineCPU()
	if err != nil {
		return measured{}, err
	}
	start := time.Now()
	err = cmd.Run()
	m := measured{wall: time.Since(start), stdout: stdout.Bytes()}
	m1, merr := machineCPU()
	if err == nil && merr != nil {
		return m, merr
	}
	m.machine = m1 - m0
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

// serverCPU returns MinIO's CPU time so far.
func (b *bench) serverCPU() (time.Duration, error) { return procCPU(b.minioPID) }

// reset makes slot B ready for a full apply again: the boot state is the
// installed one and the state directory (journal, last check) is gone.
func (b *bench) reset(r *release) (stateDir string, err error) {
	stateDir = filepath.Join(b.work, "state-"+r.channel)
	if err := os.RemoveAll(stateDir); err != nil {
		return "", err
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

// applyRun is one updater apply: its cost, its result and MinIO's CPU
// time meanwhile.
type applyRun struct {
	measured
	result agent.ApplyResult
	server time.Duration
}

// apply resets slot B and runs updater apply of r; it checks that the
// whole image was fetched (nothing reused) and slot B armed.
func (b *bench) apply(ctx context.Context, r *release) (applyRun, error) {
	var a applyRun
	stateDir, err := b.reset(r)
	if err != nil {
		return a, err
	}
	s0, err := b.serverCPU()
	if err != nil {
		return a, err
	}
	a.measured, err = b.measure(ctx, nil, b.updater, "apply", "--disk", b.dev, "--running-slot", "a",
		"--config", r.config, "--state-dir", stateDir, "--reboot", "next-boot", "-o", "json")
	if err != nil {
		return a, err
	}
	s1, err := b.serverCPU()
	if err != nil {
		return a, err
	}
	a.server = s1 - s0
	ar := &a.result
	// The JSON document comes first; the reboot policy's line follows it.
	if err := json.NewDecoder(bytes.NewReader(a.stdout)).Decode(ar); err != nil {
		return a, fmt.Errorf("updater apply -o json: %w: %q", err, a.stdout)
	}
	switch {
	case ar.State.Trial != partition.B:
		return a, fmt.Errorf("updater apply left boot state %+v, want slot b on trial", ar.State)
	case ar.Stats.Reused != 0 || ar.Stats.Skipped != 0 || ar.Stats.Fetched != r.size:
		return a, fmt.Errorf("updater apply was not a full fetch: %+v", ar.Stats)
	}
	return a, nil
}

// measureApply times apply, each stage alone, the shell pipeline and
// rauc install, runs interleaved with the order rotating, and returns
// apply's peak RSS.
func (b *bench) measureApply(ctx context.Context, r *release, aws string, rep *Report) (int64, error) {
	url := b.srv.URL(prefix)
	off := b.layout.B.Start
	if r.size > b.layout.B.Size {
		return 0, fmt.Errorf("%s does not fit slot b", r.slot)
	}
	dd := []string{"if=" + r.slot, "of=" + b.dev, "bs=4M", "iflag=fullblock", "oflag=direct,seek_bytes",
		fmt.Sprintf("seek=%d", off), "conv=fsync", "status=none"}
	sumFile := filepath.Join(b.work, "pipeline.sha256")
	const script = `set -o pipefail
"$1" --endpoint-url "$6" s3 cp --only-show-errors "$2" - | zstd -d -c -q | tee >(sha256sum > "$3") |
	dd of="$4" bs=4M iflag=fullblock oflag=direct,seek_bytes seek="$5" conv=fsync status=none
wait $!`
	apply := Measure{Name: "updater apply", Command: "updater apply --disk " + b.dev + " --running-slot a"}
	get := Measure{Name: "GET to /dev/null", Command: "Go GET (the updater's S3 client), plus MinIO's CPU"}
	unzstd := Measure{Name: "zstd decompression", Command: "Go klauspost/compress zstd, one goroutine"}
	hash := Measure{Name: "SHA-256", Command: "Go crypto/sha256 of slot.img"}
	write := Measure{Name: "dd oflag=direct", Command: "dd bs=4M oflag=direct,seek_bytes seek=slot b conv=fsync"}
	pipe := Measure{Name: "shell pipeline", Command: "aws s3 cp - | zstd -d | tee >(sha256sum) | dd oflag=direct"}
	rauc := Measure{Name: "rauc install (plain bundle, local file)", Command: fmt.Sprintf(
		"rauc install of a local %.1f MB plain bundle into a raw slot over slot b's bytes (rauc service, bootloader=noop)", mb(b.rauc.bytes))}
	raucHTTP := Measure{Name: "rauc install (plain bundle, http from MinIO)",
		Command: "rauc install of a presigned MinIO URL of the same bundle: downloaded whole, then installed; plus MinIO's CPU"}
	var peak int64
	var applyServer, scan, verify, engine []float64
	for i := range b.o.Runs {
		steps := []func() error{
			func() error {
				a, err := b.apply(ctx, r)
				if err != nil {
					return err
				}
				apply.add(a.wall, a.cpu+a.server, a.machine)
				applyServer = append(applyServer, a.server.Seconds())
				scan = append(scan, a.result.Stats.Scan.Seconds())
				verify = append(verify, a.result.Stats.Verify.Seconds())
				engine = append(engine, a.result.Stats.Elapsed.Seconds())
				peak = max(peak, a.maxRSS)
				return nil
			},
			func() error {
				s0, err := b.serverCPU()
				if err != nil {
					return err
				}
				m, err := b.measure(ctx, b.env, b.self, stageArg, stageGet, url, r.key)
				if err != nil {
					return err
				}
				s1, err := b.serverCPU()
				if err != nil {
					return err
				}
				if got := strings.TrimSpace(string(m.stdout)); got != strconv.FormatInt(r.objSize, 10) {
					return fmt.Errorf("GET of %s gave %s bytes, want %d", r.key, got, r.objSize)
				}
				get.add(m.wall, m.cpu+s1-s0, m.machine)
				return nil
			},
			func() error {
				m, err := b.measure(ctx, nil, b.self, stageArg, stageUnzstd, r.object)
				if err != nil {
					return err
				}
				if got := strings.TrimSpace(string(m.stdout)); got != strconv.FormatInt(r.size, 10) {
					return fmt.Errorf("decompression gave %s bytes, want %d", got, r.size)
				}
				unzstd.add(m.wall, m.cpu, m.machine)
				return nil
			},
			func() error {
				m, err := b.measure(ctx, nil, b.self, stageArg, stageSHA256, r.slot)
				if err != nil {
					return err
				}
				if got := strings.TrimSpace(string(m.stdout)); got != r.sha256 {
					return fmt.Errorf("SHA-256 of slot.img is %s, the manifest says %s", got, r.sha256)
				}
				hash.add(m.wall, m.cpu, m.machine)
				return nil
			},
			func() error {
				m, err := b.measure(ctx, nil, "dd", dd...)
				if err != nil {
					return err
				}
				write.add(m.wall, m.cpu, m.machine)
				return nil
			},
			func() error {
				os.Remove(sumFile)
				s0, err := b.serverCPU()
				if err != nil {
					return err
				}
				m, err := b.measure(ctx, b.env, "bash", "-c", script, "bash", aws, url+"/"+r.key, sumFile, b.dev, strconv.FormatInt(off, 10), b.srv.Endpoint)
				if err != nil {
					return err
				}
				s1, err := b.serverCPU()
				if err != nil {
					return err
				}
				sum, err := os.ReadFile(sumFile)
				if err != nil {
					return err
				}
				if got, _, _ := strings.Cut(string(sum), " "); got != r.sha256 {
					return fmt.Errorf("the pipeline wrote bytes with SHA-256 %s, the manifest says %s", got, r.sha256)
				}
				pipe.add(m.wall, m.cpu+s1-s0, m.machine)
				return nil
			},
			func() error {
				m, err := b.raucInstall(ctx, r, false)
				if err != nil {
					return err
				}
				rauc.add(m.wall, m.cpu, m.machine)
				return nil
			},
			func() error {
				m, err := b.raucInstall(ctx, r, true)
				if err != nil {
					return err
				}
				raucHTTP.add(m.wall, m.cpu, m.machine)
				return nil
			},
		}
		names := []string{"apply", "GET", "zstd -d", "sha256", "dd", "pipeline", "rauc install", "rauc install http"}
		k := i % len(steps)
		steps = append(steps[k:], steps[:k]...)
		names = append(names[k:], names[:k]...)
		for j, step := range steps {
			b.logf("run %d/%d: %s", i+1, b.o.Runs, names[j])
			if err := step(); err != nil {
				return 0, err
			}
		}
	}
	apply.finish(0)
	apply.ServerCPUMed = harness.Median(applyServer)
	apply.ApplyOver = 1
	rep.Apply = apply
	for _, m := range []*Measure{&get, &unzstd, &hash, &write} {
		m.finish(apply.WallMed)
		rep.Stages = append(rep.Stages, *m)
	}
	pipe.finish(apply.WallMed)
	rep.Pipeline = pipe
	rauc.finish(apply.WallMed)
	rep.RAUC = rauc
	raucHTTP.finish(apply.WallMed)
	rep.RAUCHTTP = raucHTTP

	l := LimitReport{Cores: runtime.NumCPU(), ApplyS: apply.WallMed, ApplyScan: harness.Median(scan), ApplyVfy: harness.Median(verify),
		ApplyEngine: harness.Median(engine)}
	for _, s := range rep.Stages {
		if s.WallMed > l.SlowestS {
			l.Slowest, l.SlowestS = s.Name, s.WallMed
		}
		l.CPUSumS += s.CPUMed
		l.MachineSumS += s.MachineMed
	}
	l.LimitS = max(l.SlowestS, l.MachineSumS/float64(l.Cores))
	l.Ratio = apply.WallMed / l.LimitS
	l.ProcessLimitS = max(l.SlowestS, l.CPUSumS/float64(l.Cores))
	l.ProcessRatio = apply.WallMed / l.ProcessLimitS
	rep.Limit = l
	return peak, nil
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
