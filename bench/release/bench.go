package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/twinroot/twinroot/bench/internal/harness"
	"github.com/twinroot/twinroot/internal/s3test"
	"github.com/twinroot/twinroot/internal/testroot"
)

type options struct {
	harness.Common
	SizeMB    int64
	Seed      uint64
	BuildRuns int
	Runs      int
	Servers   []string
}

func (o options) validate() error {
	switch {
	case o.SizeMB < 1:
		return fmt.Errorf("-size %d: want at least 1 MiB", o.SizeMB)
	case o.BuildRuns < 1 || o.Runs < 1:
		return fmt.Errorf("-build-runs %d, -runs %d: want at least 1 each", o.BuildRuns, o.Runs)
	}
	for _, s := range o.Servers {
		if !slices.Contains(s3test.Kinds, s) {
			return fmt.Errorf("-servers: unknown server %q (want %s)", s, strings.Join(s3test.Kinds, ", "))
		}
	}
	return nil
}

// Report is what one bench run measured. Times are in seconds, sizes in
// bytes, MB are 10^6 bytes.
type Report struct {
	Root    RootReport      `json:"root"`
	Image   ImageReport     `json:"image"`
	Build   BuildReport     `json:"build"`
	Publish []PublishReport `json:"publish"`
}

// RootReport describes the generated root.
type RootReport struct {
	Seed      uint64  `json:"seed"`
	Files     int     `json:"files"`
	Bytes     int64   `json:"bytes"`
	GenerateS float64 `json:"generate_s"`
}

// ImageReport describes the build output.
type ImageReport struct {
	SlotBytes   int64 `json:"slot_bytes"`
	ObjectBytes int64 `json:"object_bytes"`
	IndexBytes  int64 `json:"index_bytes"`
	Chunks      int   `json:"chunks"`
	// ObjectRatio is slot.img.zst's size over slot.img's.
	ObjectRatio float64 `json:"object_ratio"`
}

// BuildReport compares updater build with mksquashfs alone.
type BuildReport struct {
	Compression string    `json:"compression"`
	Runs        int       `json:"runs"`
	UpdaterS    []float64 `json:"updater_build_s"`
	MksquashfsS []float64 `json:"mksquashfs_s"`
	UpdaterMed  float64   `json:"updater_build_median_s"`
	MksqMed     float64   `json:"mksquashfs_median_s"`
	// Ratio is the median time of updater build over mksquashfs's: what
	// chunking and compressing the image add to making it.
	Ratio float64 `json:"ratio"`
	// Reproducible is whether every run gave the same four files (only
	// known with more than one run).
	Reproducible *bool `json:"reproducible,omitempty"`
}

// PublishReport compares updater publish with aws s3 cp on one server.
type PublishReport struct {
	Server       string    `json:"server"`
	Runs         int       `json:"runs"`
	PublishBytes int64     `json:"publish_bytes"` // image, index, manifests
	AWSBytes     int64     `json:"aws_bytes"`     // slot.img.zst
	PublishS     []float64 `json:"publish_s"`
	AWSS         []float64 `json:"aws_s3_cp_s"`
	PublishMBps  float64   `json:"publish_mb_per_s"`
	AWSMBps      float64   `json:"aws_s3_cp_mb_per_s"`
	// Ratio is publish's median throughput over aws s3 cp's.
	Ratio float64 `json:"ratio"`
	// Verified is set when updater verify accepted the last publish.
	Verified bool `json:"verified"`
}

// compression is updater build's default; mksquashfsArgs must stay the
// flags image.Build passes mksquashfs for it.
const compression = "xz"

func mksquashfsArgs(root, out string) []string {
	return []string{root, out, "-noappend", "-quiet", "-no-progress", "-mkfs-time", "0", "-all-time", "0", "-comp", compression}
}

// bench holds the state of one run.
type bench struct {
	o       options
	work    string
	updater string
	root    string
	key     string // release.key
	pub     string // release.pub
	build   string // the build output directory that is published
	log     io.Writer
}

func run(ctx context.Context, o options, log io.Writer) (rep Report, err error) {
	b := &bench{o: o, log: log}
	if err := harness.NeedTools("mksquashfs"); err != nil {
		return rep, err
	}
	if _, err := s3test.AWSBinary(); err != nil {
		return rep, err
	}
	env, remove, err := harness.Prepare(ctx, o.Common, "twinroot-bench-", b.logf)
	if err != nil {
		return rep, err
	}
	defer remove()
	b.work, b.updater, b.key, b.pub = env.Work, env.Updater, env.Key, env.Pub
	if rep.Root, err = b.generate(); err != nil {
		return rep, err
	}
	if rep.Build, rep.Image, err = b.measureBuild(ctx); err != nil {
		return rep, err
	}
	for _, kind := range o.Servers {
		p, err := b.measurePublish(ctx, kind)
		if err != nil {
			return rep, fmt.Errorf("publish to %s: %w", kind, err)
		}
		rep.Publish = append(rep.Publish, p)
	}
	return rep, nil
}

// generate writes the root to build.
func (b *bench) generate() (RootReport, error) {
	b.root = filepath.Join(b.work, "root")
	if err := os.RemoveAll(b.root); err != nil {
		return RootReport{}, err
	}
	b.logf("generating a %d MiB root (seed %d) in %s", b.o.SizeMB, b.o.Seed, b.root)
	start := time.Now()
	st, err := testroot.Sized(b.o.Seed, b.o.SizeMB<<20).Write(b.root)
	return RootReport{Seed: b.o.Seed, Files: st.Files, Bytes: st.Bytes, GenerateS: time.Since(start).Seconds()}, err
}

// measureBuild times updater build and mksquashfs alone on the same root,
// interleaved, alternating which goes first so neither always finds the
// page cache warmer.
func (b *bench) measureBuild(ctx context.Context) (BuildReport, ImageReport, error) {
	rep := BuildReport{Compression: compression, Runs: b.o.BuildRuns}
	var img ImageReport
	b.build = filepath.Join(b.work, "build")
	var first [][sha256.Size]byte
	same := true
	for i := range b.o.BuildRuns {
		out := b.build
		if i > 0 {
			out = filepath.Join(b.work, fmt.Sprintf("build-%d", i+1))
		}
		if err := os.RemoveAll(out); err != nil {
			return rep, img, err
		}
		sq := filepath.Join(b.work, "mksquashfs.img")
		steps := []func() error{
			func() error {
				b.logf("build %d/%d: mksquashfs alone", i+1, b.o.BuildRuns)
				os.Remove(sq)
				d, err := b.timed(ctx, nil, "mksquashfs", mksquashfsArgs(b.root, sq)...)
				rep.MksquashfsS = append(rep.MksquashfsS, d.Seconds())
				return err
			},
			func() error {
				b.logf("build %d/%d: updater build", i+1, b.o.BuildRuns)
				start := time.Now()
				stdout, err := harness.Command(ctx, nil, b.updater, "build", "--rootfs", b.root, "--trust", b.pub,
					"--version", "1.0.0", "--serial", "1", "--compression", compression, "--out", out, "-o", "json")
				rep.UpdaterS = append(rep.UpdaterS, time.Since(start).Seconds())
				if err != nil {
					return err
				}
				r, err := harness.BuildOutput(stdout)
				if err != nil {
					return err
				}
				if img.Chunks == 0 {
					img = ImageReport{SlotBytes: r.Manifest.Image.Size, ObjectBytes: r.Manifest.Image.CompressedSize, Chunks: r.Chunks}
				}
				return nil
			},
		}
		if i%2 == 1 {
			slices.Reverse(steps)
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return rep, img, err
			}
		}
		sums, err := sumFiles(out, "slot.img", "slot.img.zst", "chunks.idx", "manifest.json")
		if err != nil {
			return rep, img, err
		}
		if i == 0 {
			first = sums
		} else {
			same = same && slices.Equal(first, sums)
			if err := os.RemoveAll(out); err != nil {
				return rep, img, err
			}
		}
	}
	if b.o.BuildRuns > 1 {
		if !same {
			return rep, img, fmt.Errorf("%d builds of the same root differ: updater build is not reproducible", b.o.BuildRuns)
		}
		rep.Reproducible = &same
	}
	rep.UpdaterMed, rep.MksqMed = harness.Median(rep.UpdaterS), harness.Median(rep.MksquashfsS)
	rep.Ratio = rep.UpdaterMed / rep.MksqMed
	fi, err := os.Stat(filepath.Join(b.build, "chunks.idx"))
	if err != nil {
		return rep, img, err
	}
	img.IndexBytes = fi.Size()
	img.ObjectRatio = float64(img.ObjectBytes) / float64(img.SlotBytes)
	return rep, img, nil
}

// measurePublish starts the server and times updater publish of the build
// against aws s3 cp of its slot.img.zst, interleaved. Each publish goes to
// a channel of its own (a channel takes a serial once); each copy to a key
// of its own.
func (b *bench) measurePublish(ctx context.Context, kind string) (PublishReport, error) {
	rep := PublishReport{Server: kind, Runs: b.o.Runs}
	dir := filepath.Join(b.work, kind)
	if err := os.RemoveAll(dir); err != nil {
		return rep, err
	}
	b.logf("starting %s on 127.0.0.1", kind)
	srv, stop, err := s3test.Launch(kind, dir)
	if err != nil {
		return rep, err
	}
	defer stop()
	// The server's environment, and a HOME without the user's ~/.aws.
	env := append(srv.Env(), "HOME="+dir)
	object := filepath.Join(b.build, "slot.img.zst")
	fi, err := os.Stat(object)
	if err != nil {
		return rep, err
	}
	rep.AWSBytes = fi.Size()
	var channel string
	for i := range b.o.Runs {
		channel = fmt.Sprintf("bench%d", i+1)
		steps := []func() error{
			func() error {
				b.logf("%s %d/%d: updater publish", kind, i+1, b.o.Runs)
				start := time.Now()
				stdout, err := harness.Command(ctx, env, b.updater, "publish", "--image", b.build, "--channel", channel,
					"--key", b.key, "--to", srv.URL("publish"), "--endpoint", srv.Endpoint, "-o", "json")
				rep.PublishS = append(rep.PublishS, time.Since(start).Seconds())
				if err != nil {
					return err
				}
				r, err := harness.PublishOutput(stdout)
				if err != nil {
					return err
				}
				rep.PublishBytes = r.Bytes
				return nil
			},
			func() error {
				b.logf("%s %d/%d: aws s3 cp", kind, i+1, b.o.Runs)
				start := time.Now()
				_, err := srv.TryAWS("s3", "cp", "--only-show-errors", object, srv.URL(fmt.Sprintf("aws-s3-cp/%d/slot.img.zst", i+1)))
				rep.AWSS = append(rep.AWSS, time.Since(start).Seconds())
				return err
			},
		}
		if i%2 == 1 {
			slices.Reverse(steps)
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return rep, err
			}
		}
	}
	rep.PublishMBps = float64(rep.PublishBytes) / 1e6 / harness.Median(rep.PublishS)
	rep.AWSMBps = float64(rep.AWSBytes) / 1e6 / harness.Median(rep.AWSS)
	rep.Ratio = rep.PublishMBps / rep.AWSMBps

	// What was measured must be a release a device accepts.
	b.logf("%s: updater verify of channel %s", kind, channel)
	if _, err := harness.Command(ctx, env, b.updater, "verify", srv.URL("publish"), "--channel", channel,
		"--pub", b.pub, "--endpoint", srv.Endpoint); err != nil {
		return rep, err
	}
	rep.Verified = true
	return rep, nil
}

func (b *bench) timed(ctx context.Context, env []string, name string, args ...string) (time.Duration, error) {
	start := time.Now()
	_, err := harness.Command(ctx, env, name, args...)
	return time.Since(start), err
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "bench: "+format+"\n", args...)
}

func sumFiles(dir string, names ...string) ([][sha256.Size]byte, error) {
	var sums [][sha256.Size]byte
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("hash %s: %w", n, err)
		}
		sums = append(sums, [sha256.Size]byte(h.Sum(nil)))
	}
	return sums, nil
}
