package partition

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/twinroot/twinroot/internal/refusal"
)

// Errors of the disk choice.
var (
	ErrNoDisk      = refusal.New("no suitable disk")
	ErrBootMedium  = refusal.New("disk is the boot medium")
	ErrHoldsData   = refusal.New("disk holds twinroot data")
	ErrDiskMounted = refusal.New("disk has mounted filesystems")
)

// Disk is a whole disk seen in sysfs.
type Disk struct {
	Name      string // kernel name, e.g. vda
	Path      string // device node, e.g. /dev/vda
	Size      int64  // bytes
	Removable bool
	Dev       string // major:minor
}

// Finder lists and chooses disks. Its paths are fields so that tests can point
// them at a fake sysfs tree and at disk image files.
type Finder struct {
	SysBlock  string // usually /sys/block
	DevDir    string // usually /dev
	MountInfo string // usually /proc/self/mountinfo; "" skips the mounted check
	// BootMedium names disks (kernel names or device paths) the system booted
	// from; they are never chosen.
	BootMedium []string
}

// System returns the Finder for the running system.
func System() Finder {
	return Finder{SysBlock: "/sys/block", DevDir: "/dev", MountInfo: "/proc/self/mountinfo"}
}

// skipped kernel name prefixes: not disks an installer writes to.
var notDisks = []string{"loop", "ram", "zram", "sr", "fd", "dm-", "md", "nbd"}

// List returns the whole disks of the system an installer may choose,
// sorted by name: loop, RAM, optical and virtual devices are left out.
func (f Finder) List() ([]Disk, error) { return f.list(false) }

func (f Finder) list(all bool) ([]Disk, error) {
	ents, err := os.ReadDir(f.SysBlock)
	if err != nil {
		return nil, fmt.Errorf("list disks: %w", err)
	}
	var disks []Disk
	for _, e := range ents {
		name := e.Name()
		if !all && hasAnyPrefix(name, notDisks) {
			continue
		}
		dir := filepath.Join(f.SysBlock, name)
		sectors, err := readInt(filepath.Join(dir, "size"))
		if err != nil || sectors == 0 {
			continue
		}
		rem, _ := readInt(filepath.Join(dir, "removable"))
		dev, _ := os.ReadFile(filepath.Join(dir, "dev"))
		disks = append(disks, Disk{
			Name:      name,
			Path:      filepath.Join(f.DevDir, name),
			Size:      sectors * SectorSize,
			Removable: rem == 1,
			Dev:       strings.TrimSpace(string(dev)),
		})
	}
	sort.Slice(disks, func(i, j int) bool { return disks[i].Name < disks[j].Name })
	return disks, nil
}

// Choose picks the install target: the first non-removable disk that is not
// the boot medium, has nothing mounted, and holds no twinroot data partition
// unless wipeData is set.
func (f Finder) Choose(wipeData bool) (Disk, error) {
	disks, err := f.List()
	if err != nil {
		return Disk{}, err
	}
	// Each disk's refusal, wrapped, so that errors.Is finds ErrHoldsData
	// and its kin in the answer.
	refusals := []any{ErrNoDisk}
	for _, d := range disks {
		if d.Removable {
			refusals = append(refusals, fmt.Errorf("%s is removable", d.Name))
			continue
		}
		if err := f.Check(d, wipeData); err != nil {
			refusals = append(refusals, err)
			continue
		}
		return d, nil
	}
	if len(refusals) == 1 {
		return Disk{}, fmt.Errorf("%w: no disks found", ErrNoDisk)
	}
	format := "%w: " + strings.Repeat("%w; ", len(refusals)-1)
	return Disk{}, fmt.Errorf(strings.TrimSuffix(format, "; "), refusals...)
}

// Lookup returns the Disk for a device path or kernel name; unlike List it
// finds loop devices too, which a user may name on purpose.
func (f Finder) Lookup(path string) (Disk, error) {
	disks, err := f.list(true)
	if err != nil {
		return Disk{}, err
	}
	for _, d := range disks {
		if d.Path == path || d.Name == path || d.Name == filepath.Base(path) {
			return d, nil
		}
	}
	return Disk{}, fmt.Errorf("%w: %s is not a whole disk", ErrNoDisk, path)
}

// Check tells why d must not be written: it is the boot medium, it has mounted
// filesystems, or it holds twinroot data and wipeData is not set.
func (f Finder) Check(d Disk, wipeData bool) error {
	for _, b := range f.BootMedium {
		if b == d.Name || b == d.Path || filepath.Base(b) == d.Name {
			return fmt.Errorf("%w: %s", ErrBootMedium, d.Path)
		}
	}
	mounted, err := f.mountedDisks()
	if err != nil {
		return err
	}
	if mounted[d.Name] {
		return fmt.Errorf("%w: %s", ErrDiskMounted, d.Path)
	}
	if !wipeData {
		fh, err := os.Open(d.Path)
		if err != nil {
			return fmt.Errorf("open %s: %w", d.Path, err)
		}
		defer fh.Close()
		if HasData(fh) {
			return fmt.Errorf("%w: %s", ErrHoldsData, d.Path)
		}
	}
	return nil
}

// mountedDisks maps the kernel names of whole disks that hold a mounted
// filesystem (on the disk or one of its partitions).
func (f Finder) mountedDisks() (map[string]bool, error) {
	out := map[string]bool{}
	if f.MountInfo == "" {
		return out, nil
	}
	fh, err := os.Open(f.MountInfo)
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer fh.Close()
	devs := map[string]bool{}
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 2 {
			devs[fields[2]] = true
		}
	}
	disks, err := f.list(true)
	if err != nil {
		return nil, err
	}
	for _, d := range disks {
		if devs[d.Dev] {
			out[d.Name] = true
			continue
		}
		parts, _ := filepath.Glob(filepath.Join(f.SysBlock, d.Name, d.Name+"*", "dev"))
		for _, p := range parts {
			b, _ := os.ReadFile(p)
			if devs[strings.TrimSpace(string(b))] {
				out[d.Name] = true
			}
		}
	}
	return out, nil
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// FindTwinroot returns the disk that holds a twinroot layout: the live
// system's own disk. With several, the first by name.
func (f Finder) FindTwinroot() (Disk, error) {
	disks, err := f.list(true)
	if err != nil {
		return Disk{}, err
	}
	for _, d := range disks {
		if hasAnyPrefix(d.Name, []string{"ram", "zram", "sr", "fd"}) {
			continue
		}
		fh, err := os.Open(d.Path)
		if err != nil {
			continue
		}
		ok := HasData(fh)
		fh.Close()
		if ok {
			return d, nil
		}
	}
	return Disk{}, fmt.Errorf("%w: no disk holds a twinroot layout (name one with --disk)", ErrNoDisk)
}
