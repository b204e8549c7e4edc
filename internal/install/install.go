package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/chunk"
	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/engine"
	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/state"
)

// Errors callers act on.
var (
	ErrDiskMissing  = refusal.New("disk not found")
	ErrNotConfirmed = refusal.New("not confirmed")
)

// Options of an install.
type Options struct {
	Disk string // disk image file or block device
	// Image is a build output directory of updater build, signed by
	// updater sign (the manifest must be signed by a key its own image
	// trusts, and every chunk written is checked against its signed
	// index), or a bare slot image (checked as release.ReadImage says).
	Image      string
	GrubDir    string // boot.img, core.img, BOOTX64.EFI (see grub.BuildImages)
	SlotSize   int64  // bytes; default partition.DefaultSlotSize
	WipeData   bool   // allow overwriting a disk that holds twinroot data
	Config     string // device.yaml to seed the data partition with; "" for none
	KernelArgs string // appended to the kernel command line of both slots
	// Finder checks a block device against the boot medium and mounts; nil
	// uses partition.System().
	Finder *partition.Finder
	// Confirm is called with the plan after every check passed and before
	// anything is written; an error from it aborts the install.
	Confirm func(Plan) error
	// Progress is called while slot A is written (bytes done, total).
	Progress func(done, total int64)
	Log      *slog.Logger
}

// Plan is what an install will do, shown before it writes.
type Plan struct {
	Disk     string           `json:"disk"`
	DiskSize int64            `json:"disk_size"`
	Layout   partition.Layout `json:"layout"`
	Image    image.Slot       `json:"image"`
	Signed   bool             `json:"signed"` // the release's manifest is signed by a key the image trusts
	Wipes    bool             `json:"wipes_twinroot_data"`
}

// Result reports a finished install.
type Result struct {
	Plan
	SHA256   string        `json:"sha256"`
	Duration time.Duration `json:"duration_ns"`
}

// Install runs the checks, then writes the disk.
func Install(ctx context.Context, o Options) (Result, error) {
	start := time.Now()
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.SlotSize == 0 {
		o.SlotSize = partition.DefaultSlotSize
	}
	rel, info, local, err := open(ctx, o.Image)
	if err != nil {
		return Result{}, fmt.Errorf("%w; nothing written", err)
	}
	defer local.Close()
	imgs, err := grub.LoadImages(o.GrubDir)
	if err != nil {
		return Result{}, err
	}
	var cfg []byte
	stateDir := config.DefaultStateDir
	if o.Config != "" {
		if cfg, err = os.ReadFile(o.Config); err != nil {
			return Result{}, fmt.Errorf("read device config: %w", err)
		}
		c, err := config.Parse(cfg)
		if err != nil {
			return Result{}, fmt.Errorf("%w; nothing written", err)
		}
		stateDir = c.StateDir
	}
	grubCfg, err := grub.Config(grub.CfgOptions{KernelArgs: o.KernelArgs})
	if err != nil {
		return Result{}, err
	}

	disk, err := os.OpenFile(o.Disk, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return Result{}, fmt.Errorf("%w: %s (for a disk image, create it first: truncate -s 8G %s)", ErrDiskMissing, o.Disk, o.Disk)
	}
	if err != nil {
		return Result{}, fmt.Errorf("open disk: %w", err)
	}
	defer disk.Close()
	plan, err := check(disk, o, info)
	plan.Signed = rel.Signed != nil
	if err != nil {
		return Result{}, fmt.Errorf("%w; nothing written", err)
	}
	if o.Confirm != nil {
		if err := o.Confirm(plan); err != nil {
			return Result{}, fmt.Errorf("%w; nothing written", err)
		}
	}
	l := plan.Layout
	log.Info("installing", "disk", o.Disk, "image", o.Image, "version", info.Version, "image_bytes", info.Size, "slot_bytes", l.A.Size)

	// The first write makes the old boot environment unreachable: from here
	// on the disk has no bootable slot until GRUB and the state are written.
	if err := destroyBoot(disk, l); err != nil {
		return Result{}, err
	}
	if err := partition.Write(disk, l); err != nil {
		return Result{}, err
	}
	// Through the slot engine, as every write of a slot: each chunk is
	// copied from the image file and hashed against the release's index
	// (signed, for a release directory) before it is written, and read
	// back after. Nothing is journaled: an interrupted install starts over.
	w := engine.Write{
		Release: rel, Disk: disk, Slot: partition.A, Part: l.A,
		Local: local, LocalSize: info.Size, LocalIndex: rel.Index,
		Boot: engine.Unbootable{}, Progress: o.Progress, Log: log, ReadBack: true,
	}
	if _, err := w.Run(ctx); err != nil {
		return Result{}, err
	}
	sum := rel.Manifest.Image.SHA256
	log.Info("slot A written and verified", "sha256", sum)
	if err := zero(disk, l.B.Start, partition.MiB); err != nil {
		return Result{}, fmt.Errorf("clear slot B: %w", err)
	}
	if err := formatData(ctx, disk, l.Data, cfg, stateDir, rel.Index); err != nil {
		return Result{}, err
	}
	envFiles, err := grub.InitialEnvFiles(bootstate.Initial().Env())
	if err != nil {
		return Result{}, err
	}
	files := append([]grub.File{
		{Path: grub.EFIPath, Data: imgs.EFI},
		{Path: grub.CfgPath, Data: grubCfg},
	}, envFiles...)
	if err := grub.MakeESP(disk, l.ESP.Start, l.ESP.Size, files); err != nil {
		return Result{}, fmt.Errorf("write ESP: %w", err)
	}
	if err := disk.Sync(); err != nil {
		return Result{}, err
	}
	// boot.img last: before it, BIOS finds nothing to boot.
	if err := grub.InstallBIOS(disk, l.BIOS.Start, l.BIOS.Size, imgs); err != nil {
		return Result{}, fmt.Errorf("install GRUB for BIOS: %w", err)
	}
	if err := disk.Sync(); err != nil {
		return Result{}, err
	}
	log.Info("installed", "disk", o.Disk, "version", info.Version)
	return Result{Plan: plan, SHA256: sum, Duration: time.Since(start)}, nil
}

// open reads what Options.Image names: the release to write and the image
// file its chunks are copied from.
func open(ctx context.Context, path string) (*release.Release, image.Slot, *os.File, error) {
	var rel *release.Release
	var slot image.Slot
	var err error
	file := path
	if fi, serr := os.Stat(path); serr == nil && fi.IsDir() {
		rel, slot, err = release.OpenDir(ctx, path)
		file = filepath.Join(path, release.SlotFile)
	} else {
		rel, slot, err = release.Bare(ctx, path)
	}
	if err != nil {
		return nil, image.Slot{}, nil, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, image.Slot{}, nil, err
	}
	return rel, slot, f, nil
}

func check(disk *os.File, o Options, info image.Slot) (Plan, error) {
	size, err := partition.DiskSize(disk)
	if err != nil {
		return Plan{}, err
	}
	fi, err := disk.Stat()
	if err != nil {
		return Plan{}, err
	}
	holdsData := partition.HasData(disk)
	if fi.Mode()&os.ModeDevice != 0 {
		f := partition.System()
		if o.Finder != nil {
			f = *o.Finder
		}
		d, err := f.Lookup(o.Disk)
		if err != nil {
			return Plan{}, err
		}
		if err := f.Check(d, o.WipeData); err != nil {
			return Plan{}, err
		}
	} else if holdsData && !o.WipeData {
		return Plan{}, fmt.Errorf("%w: %s", partition.ErrHoldsData, o.Disk)
	}
	l, err := partition.Plan(size, o.SlotSize)
	if err != nil {
		return Plan{}, fmt.Errorf("%s: %w", o.Disk, err)
	}
	if info.Size > l.A.Size {
		return Plan{}, fmt.Errorf("%w: image is %d bytes (%.1f MiB), slot is %d MiB", refusal.ErrDoesNotFit, info.Size, float64(info.Size)/partition.MiB, l.A.Size/partition.MiB)
	}
	return Plan{Disk: o.Disk, DiskSize: size, Layout: l, Image: info, Wipes: holdsData}, nil
}

// destroyBoot clears the MBR boot code and the primary GPT so that no
// firmware boots an old twinroot half-overwritten by this install.
func destroyBoot(disk *os.File, l partition.Layout) error {
	if err := zero(disk, 0, 34*partition.SectorSize); err != nil {
		return fmt.Errorf("clear old partition table: %w", err)
	}
	return disk.Sync()
}

func zero(w io.WriterAt, off, n int64) error {
	_, err := w.WriteAt(make([]byte, n), off)
	return err
}

// formatData makes the ext4 data partition with mkfs.ext4 at the
// partition's offset (no partition device node needed), seeded with the
// device config and, in the state directory when it is on the data
// partition, slot A's chunk index: the first apply then need not scan
// slot A.
func formatData(ctx context.Context, disk *os.File, part partition.Part, cfg []byte, stateDir string, idx *chunk.Index) error {
	seed, err := os.MkdirTemp("", "twinroot-data-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(seed)
	if cfg != nil {
		dst := filepath.Join(seed, config.DataPath)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, cfg, 0o600); err != nil {
			return err
		}
	}
	if rel, ok := strings.CutPrefix(stateDir, config.DataMount+"/"); ok {
		if b, err := idx.MarshalBinary(); err == nil {
			dst := filepath.Join(seed, rel, state.SlotIndexName(string(partition.A)))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(dst, b, 0o644); err != nil {
				return err
			}
		}
	}
	if err := zero(disk, part.Start, partition.MiB); err != nil {
		return fmt.Errorf("clear data partition: %w", err)
	}
	cmd := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-L", partition.LabelData,
		"-E", "offset="+strconv.FormatInt(part.Start, 10)+",root_owner=0:0,nodiscard",
		"-d", seed, disk.Name(), strconv.FormatInt(part.Size/1024, 10)+"k")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4 on the data partition: %v: %s", err, out)
	}
	return nil
}
