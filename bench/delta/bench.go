package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/twinroot/twinroot/bench/internal/harness"
	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/image/examples/debian"
	"github.com/twinroot/twinroot/internal/chunk"
	"github.com/twinroot/twinroot/internal/fetch"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/source"
)

type options struct {
	harness.Common        // Updater is not used: images are built in process
	Cache          string // roots, slot images and package files: build/delta
	DebianCache    string // the Debian base: build/debian
	RebuildImages  bool
	Gaps           []int64 // more fetch.Options.MaxGap values to measure, in bytes
}

// Report is what one bench run measured. Sizes are in bytes.
type Report struct {
	Params ParamsReport `json:"chunk_params"`
	Pairs  []PairReport `json:"pairs"`
}

// ParamsReport are the chunker parameters of the releases (chunk.DefaultParams).
type ParamsReport struct {
	MinSize     uint32 `json:"min_size"`
	MaxSize     uint32 `json:"max_size"`
	AverageBits uint32 `json:"average_bits"`
}

// PairReport is one update: a device running From takes To.
type PairReport struct {
	Name    string `json:"name"`
	Change  string `json:"change"`
	From    string `json:"from"`
	To      string `json:"to"`
	Image   Image  `json:"image"` // of To
	Changed Files  `json:"changed"`
	// Twinroot is fetch.Apply of To's release with From as the running slot.
	Twinroot Twinroot `json:"twinroot"`
	Casync   Casync   `json:"casync"`
	// Ideal is the compressed size of the files that changed: every
	// regular file of To that From lacks or holds with other bytes,
	// compressed alone with xz -6 (the image's compressor), summed.
	Ideal int64 `json:"ideal_bytes"`
	// Ratios of the totals.
	TwinrootOverCasync float64 `json:"twinroot_over_casync"`
	TwinrootOverIdeal  float64 `json:"twinroot_over_ideal"`
	CasyncOverIdeal    float64 `json:"casync_over_ideal"`
}

// Image describes the new release's artifacts.
type Image struct {
	SlotBytes   int64 `json:"slot_bytes"`
	ObjectBytes int64 `json:"object_bytes"`
	IndexBytes  int64 `json:"index_bytes"`
	Chunks      int   `json:"chunks"`
}

// Files are the regular files of To that From lacks or holds with other bytes.
type Files struct {
	Count    int   `json:"count"`
	RawBytes int64 `json:"raw_bytes"`
}

// Twinroot is what a device fetches.
type Twinroot struct {
	// Fetched is fetch.Stats.FetchedCompressed with the default
	// coalescing gap: every byte received, frames and gaps.
	Fetched    int64 `json:"fetched_bytes"`
	IndexBytes int64 `json:"index_bytes"`
	Total      int64 `json:"total_bytes"` // Fetched + IndexBytes
	Requests   int64 `json:"requests"`
	// NoGap is FetchedCompressed with fetch.Options.MaxGap -1 (no
	// coalescing): the frames of the chunks not found locally alone.
	NoGap         int64 `json:"fetched_no_gap_bytes"`
	NoGapRequests int64 `json:"requests_no_gap"`
	// GapBytes = Fetched - NoGap: bytes read between wanted frames and
	// thrown away.
	GapBytes      int64 `json:"gap_bytes"`
	FetchedChunks int   `json:"fetched_chunks"`
	ReusedRaw     int64 `json:"reused_raw_bytes"`
	// Gaps are the runs with the MaxGap values of -gaps.
	Gaps []GapRun `json:"gaps,omitempty"`
}

// GapRun is fetch.Apply with one MaxGap.
type GapRun struct {
	MaxGap   int64 `json:"max_gap"`
	Fetched  int64 `json:"fetched_bytes"`
	Requests int64 `json:"requests"`
}

// Casync is casync make of both images into one store.
type Casync struct {
	NewChunks  int   `json:"new_chunks"`
	ChunkBytes int64 `json:"chunk_bytes"` // the new chunk files in the store
	IndexBytes int64 `json:"index_bytes"` // the new image's .caibx
	Total      int64 `json:"total_bytes"`
}

// pair is one update the bench measures.
type pair struct {
	name, change string
	from, to     *rootSpec
}

var pairs = []pair{
	{"openssl", "security update of openssl 3.5.9 to 3.5.10 (libssl3t64, openssl, openssl-provider-legacy)", v1, openssl},
	{"mixed", "security updates of krb5, libzstd1 and shadow (8 packages), less and jq added (4), and a configuration change (host name, a user, sysctl, journald, a timer off, motd)", v1, mixed},
}

// Versions of the releases: the running one and the update.
var versions = map[bool]struct {
	version string
	serial  uint64
}{false: {"1.0.0", 1}, true: {"1.1.0", 2}}

type bench struct {
	o     options
	work  string
	roots *roots
	pub   string // the trusted key baked into every image
	log   io.Writer
}

func run(ctx context.Context, o options, log io.Writer) (rep Report, err error) {
	b := &bench{o: o, log: log}
	for _, t := range []string{"mksquashfs", "casync", "xz", "dpkg", "unshare"} {
		if _, err := exec.LookPath(t); err != nil {
			return rep, fmt.Errorf("%s not found: run make deps (and apt-get install casync)", t)
		}
	}
	if b.work = o.Work; b.work == "" {
		if b.work, err = os.MkdirTemp("", "twinroot-delta-"); err != nil {
			return rep, err
		}
		defer os.RemoveAll(b.work)
	} else if err := os.MkdirAll(b.work, 0o755); err != nil {
		return rep, err
	}
	if b.work, err = filepath.Abs(b.work); err != nil {
		return rep, err
	}
	cache, err := filepath.Abs(o.Cache)
	if err != nil {
		return rep, err
	}
	base, err := debian.BuildBase(ctx, o.DebianCache, logWriter{b})
	if err != nil {
		return rep, err
	}
	b.roots = &roots{cache: cache, base: base, logf: b.logf}
	if b.pub, err = trustKey(cache); err != nil {
		return rep, err
	}
	p := chunk.DefaultParams
	rep.Params = ParamsReport{MinSize: p.MinSize, MaxSize: p.MaxSize, AverageBits: p.AverageBits}
	for _, pr := range pairs {
		r, err := b.measure(ctx, pr)
		if err != nil {
			return rep, fmt.Errorf("pair %s: %w", pr.name, err)
		}
		rep.Pairs = append(rep.Pairs, r)
	}
	return rep, nil
}

// trustKey writes the public key of a fixed seed under cache: every image
// trusts it, so images of the same root are the same bytes in every run.
func trustKey(cache string) (string, error) {
	k, err := keys.FromSeed(bytes.Repeat([]byte{0x42}, 32))
	if err != nil {
		return "", err
	}
	b, err := k.Public().MarshalText()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "keys")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := filepath.Join(dir, "release.pub")
	return name, os.WriteFile(name, b, 0o644)
}

// release is a built slot image with its object and index in a store.
type release struct {
	root, slot string
	key        string // the object's key in the store
	idx        *chunk.Index
	idxBytes   []byte
}

func (b *bench) measure(ctx context.Context, p pair) (PairReport, error) {
	rep := PairReport{Name: p.name, Change: p.change, From: p.from.Name, To: p.to.Name}
	store := filepath.Join(b.work, "store", p.name)
	if err := os.RemoveAll(store); err != nil {
		return rep, err
	}
	old, err := b.release(ctx, store, p.from, false)
	if err != nil {
		return rep, err
	}
	upd, err := b.release(ctx, store, p.to, true)
	if err != nil {
		return rep, err
	}
	zfi, err := os.Stat(filepath.Join(store, filepath.FromSlash(upd.key)))
	if err != nil {
		return rep, err
	}
	rep.Image = Image{SlotBytes: upd.idx.Size, ObjectBytes: zfi.Size(), IndexBytes: int64(len(upd.idxBytes)), Chunks: len(upd.idx.Chunks)}

	b.logf("%s: twinroot apply", p.name)
	t := &rep.Twinroot
	st, err := b.apply(ctx, store, old, upd, 0)
	if err != nil {
		return rep, err
	}
	t.Fetched, t.Requests, t.ReusedRaw = st.FetchedCompressed, st.Requests, st.Reused
	t.IndexBytes = int64(len(upd.idxBytes))
	t.Total = t.Fetched + t.IndexBytes
	if st, err = b.apply(ctx, store, old, upd, -1); err != nil {
		return rep, err
	}
	t.NoGap, t.NoGapRequests = st.FetchedCompressed, st.Requests
	t.GapBytes = t.Fetched - t.NoGap
	for _, g := range b.o.Gaps {
		if st, err = b.apply(ctx, store, old, upd, g); err != nil {
			return rep, err
		}
		t.Gaps = append(t.Gaps, GapRun{MaxGap: g, Fetched: st.FetchedCompressed, Requests: st.Requests})
	}
	t.FetchedChunks = fetchedChunks(old.idx, upd.idx)

	b.logf("%s: casync make", p.name)
	if rep.Casync, err = b.casync(ctx, old.slot, upd.slot); err != nil {
		return rep, err
	}
	b.logf("%s: the changed files, compressed with xz", p.name)
	if rep.Changed, rep.Ideal, err = ideal(ctx, old.root, upd.root); err != nil {
		return rep, err
	}
	// The identity image.Build adds to the root (version and serial).
	for _, f := range []string{versions[true].version + "\n", strconv.FormatUint(versions[true].serial, 10) + "\n"} {
		n, err := xzSize(ctx, strings.NewReader(f))
		if err != nil {
			return rep, err
		}
		rep.Changed.Count++
		rep.Changed.RawBytes += int64(len(f))
		rep.Ideal += n
	}
	rep.TwinrootOverCasync = float64(t.Total) / float64(rep.Casync.Total)
	rep.TwinrootOverIdeal = float64(t.Total) / float64(rep.Ideal)
	rep.CasyncOverIdeal = float64(rep.Casync.Total) / float64(rep.Ideal)
	return rep, nil
}

// release builds the slot image of s (cached) and, in the store, its object
// and index the way updater build makes them (package release).
func (b *bench) release(ctx context.Context, store string, s *rootSpec, update bool) (*release, error) {
	root, err := b.roots.dir(ctx, s)
	if err != nil {
		return nil, err
	}
	slot, err := b.image(ctx, s.Name, root, update)
	if err != nil {
		return nil, err
	}
	v := versions[update]
	rel := &release{root: root, slot: slot, key: "stable/" + v.version + "/slot.img.zst"}
	dir := filepath.Join(store, "stable", v.version)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	raw, err := os.Open(slot)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	zst, err := os.Create(filepath.Join(dir, "slot.img.zst"))
	if err != nil {
		return nil, err
	}
	idx, err := chunk.Build(ctx, raw, zst)
	if cerr := zst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", slot, err)
	}
	if rel.idxBytes, err = idx.MarshalBinary(); err != nil {
		return nil, err
	}
	// The device parses the index it fetched.
	if rel.idx, err = chunk.ParseIndex(rel.idxBytes); err != nil {
		return nil, err
	}
	return rel, os.WriteFile(filepath.Join(dir, "chunks.idx"), rel.idxBytes, 0o644)
}

// image returns the slot image of root built by image.Build (xz, the
// default of updater build), cached under its inputs: the root, the
// version and serial, the trusted key, mksquashfs's version.
func (b *bench) image(ctx context.Context, name, root string, update bool) (string, error) {
	v := versions[update]
	mv, err := exec.CommandContext(ctx, "mksquashfs", "-version").Output()
	if err != nil {
		return "", fmt.Errorf("mksquashfs -version: %w", err)
	}
	pub, err := os.ReadFile(b.pub)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "root %s\nversion %s\nserial %d\ncompression xz\nmksquashfs %s\ntrust %x\n",
		filepath.Base(root), v.version, v.serial, strings.SplitN(string(mv), "\n", 2)[0], sha256.Sum256(pub))
	out := filepath.Join(b.roots.cache, "images", name+"-"+v.version+"-"+hex.EncodeToString(h.Sum(nil))[:12]+".img")
	if _, err := os.Stat(out); err == nil && !b.o.RebuildImages {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	b.logf("building slot image %s (mksquashfs xz, about a minute)", out)
	start := time.Now()
	tmp := out + ".tmp"
	os.Remove(tmp)
	if _, err := image.Build(ctx, image.BuildOptions{Rootfs: root, Trust: []string{b.pub},
		Version: v.version, Serial: v.serial, Compression: "xz", Out: tmp}); err != nil {
		os.Remove(tmp)
		return "", err
	}
	b.logf("built in %v", time.Since(start).Round(time.Second))
	return out, os.Rename(tmp, out)
}

// apply runs fetch.Apply of upd into a sparse file with old's slot as the
// running slot and old's index as the one the device kept.
func (b *bench) apply(ctx context.Context, store string, old, upd *release, maxGap int64) (fetch.Stats, error) {
	src, err := source.Open(ctx, "file://"+store, source.Options{})
	if err != nil {
		return fetch.Stats{}, err
	}
	running, err := os.Open(old.slot)
	if err != nil {
		return fetch.Stats{}, err
	}
	defer running.Close()
	target, err := os.CreateTemp(b.work, "slot-b-")
	if err != nil {
		return fetch.Stats{}, err
	}
	defer os.Remove(target.Name())
	defer target.Close()
	if err := target.Truncate(upd.idx.Size); err != nil {
		return fetch.Stats{}, err
	}
	st, err := fetch.Apply(ctx, fetch.Options{
		Source: src, ObjectKey: upd.key, Index: upd.idx,
		Running: running, RunningSize: old.idx.Size, RunningIndex: old.idx,
		Target: target, MaxGap: maxGap,
	})
	if err != nil {
		return st, fmt.Errorf("fetch.Apply: %w", err)
	}
	return st, nil
}

// fetchedChunks counts the chunks of upd that neither old nor an earlier
// chunk of upd has.
func fetchedChunks(old, upd *chunk.Index) int {
	have := make(map[[sha256.Size]byte]bool, len(old.Chunks))
	for _, c := range old.Chunks {
		have[c.SHA256] = true
	}
	n := 0
	for _, c := range upd.Chunks {
		if !have[c.SHA256] {
			n++
			have[c.SHA256] = true
		}
	}
	return n
}

// casync makes the index of the old image into a new store, then the new
// image's; its delta is the chunk files the second adds, and the new index.
func (b *bench) casync(ctx context.Context, old, upd string) (Casync, error) {
	var c Casync
	dir := filepath.Join(b.work, "casync")
	if err := os.RemoveAll(dir); err != nil {
		return c, err
	}
	defer os.RemoveAll(dir)
	store := filepath.Join(dir, "store")
	if err := os.MkdirAll(store, 0o755); err != nil {
		return c, err
	}
	for i, img := range []string{old, upd} {
		before, err := storeFiles(store)
		if err != nil {
			return c, err
		}
		caibx := filepath.Join(dir, fmt.Sprintf("%d.caibx", i))
		if out, err := command(ctx, "casync", "make", "--store="+store, caibx, img); err != nil {
			return c, fmt.Errorf("casync make %s: %v: %s", img, err, tail(out, 5))
		}
		if i == 0 {
			continue
		}
		after, err := storeFiles(store)
		if err != nil {
			return c, err
		}
		for name, size := range after {
			if _, ok := before[name]; !ok {
				c.NewChunks++
				c.ChunkBytes += size
			}
		}
		fi, err := os.Stat(caibx)
		if err != nil {
			return c, err
		}
		c.IndexBytes = fi.Size()
	}
	c.Total = c.ChunkBytes + c.IndexBytes
	return c, nil
}

// storeFiles returns the chunk files of a casync store and their sizes.
func storeFiles(store string) (map[string]int64, error) {
	files := map[string]int64{}
	err := filepath.WalkDir(store, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".cacnk") {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files[p] = fi.Size()
		return nil
	})
	return files, err
}

// ideal finds the regular files of root to that root from lacks or holds
// with other bytes, and sums their sizes raw and compressed alone by xz -6.
func ideal(ctx context.Context, from, to string) (Files, int64, error) {
	var changed []string
	var f Files
	err := filepath.WalkDir(to, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(to, p)
		if err != nil {
			return err
		}
		same, err := sameFile(filepath.Join(from, rel), p)
		if err != nil || same {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		changed = append(changed, p)
		f.Count++
		f.RawBytes += fi.Size()
		return nil
	})
	if err != nil {
		return f, 0, err
	}
	sizes := make([]int64, len(changed))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, p := range changed {
		g.Go(func() error {
			r, err := os.Open(p)
			if err != nil {
				return err
			}
			defer r.Close()
			sizes[i], err = xzSize(gctx, r)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return f, 0, err
	}
	var sum int64
	for _, n := range sizes {
		sum += n
	}
	return f, sum, nil
}

// sameFile reports whether a is a regular file with b's bytes.
func sameFile(a, b string) (bool, error) {
	fa, err := os.Lstat(a)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	if !fa.Mode().IsRegular() || fa.Size() != fb.Size() {
		return false, nil
	}
	ra, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer ra.Close()
	rb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer rb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, ea := io.ReadFull(ra, ba)
		nb, eb := io.ReadFull(rb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea != nil || eb != nil {
			if (ea == io.EOF || ea == io.ErrUnexpectedEOF) && (eb == io.EOF || eb == io.ErrUnexpectedEOF) {
				return true, nil
			}
			return false, errors.Join(ea, eb)
		}
	}
}

// xzSize returns the size of r compressed by xz -6, mksquashfs's preset.
func xzSize(ctx context.Context, r io.Reader) (int64, error) {
	cmd := exec.CommandContext(ctx, "xz", "-6", "-c")
	cmd.Stdin = r
	var n countWriter
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &n, &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("xz: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return int64(n), nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "bench: "+format+"\n", args...)
}

// logWriter prefixes the Debian base build's progress.
type logWriter struct{ b *bench }

func (w logWriter) Write(p []byte) (int, error) {
	w.b.logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
