package partition

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/twinroot/twinroot/internal/refusal"
)

// Sizes of the fixed parts of the layout.
const (
	SectorSize      = 512
	MiB             = 1 << 20
	GiB             = 1 << 30
	BIOSSize        = 1 * MiB
	ESPSize         = 128 * MiB
	DefaultSlotSize = 2 * GiB
	// MinDataSize is the smallest data partition the installer accepts.
	MinDataSize = 64 * MiB
	// MinSlotSize is the smallest slot accepted; a slot holds a kernel and an initramfs at least.
	MinSlotSize = 16 * MiB

	firstPartOffset = 1 * MiB
	// gptTail is what the backup GPT (entries and header) takes at the end of the disk.
	gptTail = 33 * SectorSize
)

// Partition labels, in table order.
const (
	LabelBIOS = "twinroot-bios"
	LabelESP  = "twinroot-esp"
	LabelA    = "twinroot-a"
	LabelB    = "twinroot-b"
	LabelData = "twinroot-data"
)

// Errors callers act on.
var (
	ErrDiskTooSmall = refusal.New("disk too small")
	ErrNotTwinroot  = refusal.New("not a twinroot disk")
)

// Slot names one of the two root slots.
type Slot string

// The two slots.
const (
	A Slot = "a"
	B Slot = "b"
)

// ParseSlot accepts "a" or "b" (any case).
func ParseSlot(s string) (Slot, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "a":
		return A, nil
	case "b":
		return B, nil
	}
	return "", fmt.Errorf("invalid slot %q: want a or b", s)
}

// Other returns the slot that is not s.
func (s Slot) Other() Slot {
	if s == A {
		return B
	}
	return A
}

// Valid reports whether s is a or b.
func (s Slot) Valid() bool { return s == A || s == B }

// Part is one partition: its 1-based number in the table, label, and byte range.
type Part struct {
	Number int
	Label  string
	Start  int64
	Size   int64
}

// End is the offset just past the partition.
func (p Part) End() int64 { return p.Start + p.Size }

// Layout is the twinroot partition table of one disk.
type Layout struct {
	DiskSize int64
	BIOS     Part
	ESP      Part
	A        Part
	B        Part
	Data     Part
}

// Slot returns the partition of slot s.
func (l Layout) Slot(s Slot) Part {
	if s == B {
		return l.B
	}
	return l.A
}

// Parts lists the partitions in table order.
func (l Layout) Parts() []Part { return []Part{l.BIOS, l.ESP, l.A, l.B, l.Data} }

// MinDiskSize is the smallest disk that holds the layout with slots of slotSize.
func MinDiskSize(slotSize int64) int64 {
	return firstPartOffset + BIOSSize + ESPSize + 2*alignUp(slotSize) + MinDataSize + MiB
}

// Plan computes the layout for a disk of diskSize bytes with two slots of
// slotSize bytes; the data partition takes the rest.
func Plan(diskSize, slotSize int64) (Layout, error) {
	if slotSize < MinSlotSize {
		return Layout{}, fmt.Errorf("slot size %d bytes is below the minimum of %d MiB", slotSize, MinSlotSize/MiB)
	}
	slotSize = alignUp(slotSize)
	if need := MinDiskSize(slotSize); diskSize < need {
		return Layout{}, fmt.Errorf("%w: %d MiB, need at least %d MiB for two %d MiB slots", ErrDiskTooSmall, diskSize/MiB, need/MiB, slotSize/MiB)
	}
	l := Layout{DiskSize: diskSize}
	off := int64(firstPartOffset)
	next := func(n int, label string, size int64) Part {
		p := Part{Number: n, Label: label, Start: off, Size: size}
		off += size
		return p
	}
	l.BIOS = next(1, LabelBIOS, BIOSSize)
	l.ESP = next(2, LabelESP, ESPSize)
	l.A = next(3, LabelA, slotSize)
	l.B = next(4, LabelB, slotSize)
	dataEnd := (diskSize - gptTail) / MiB * MiB
	l.Data = next(5, LabelData, dataEnd-off)
	return l, nil
}

func alignUp(n int64) int64 { return (n + MiB - 1) / MiB * MiB }

var partTypes = map[string]gpt.Type{
	LabelBIOS: gpt.BIOSBoot,
	LabelESP:  gpt.EFISystemPartition,
	LabelA:    gpt.LinuxRootX86_64,
	LabelB:    gpt.LinuxRootX86_64,
	LabelData: gpt.LinuxFilesystem,
}

// Write writes the GPT of l (protective MBR, primary and backup tables) to the
// disk file or block device f. It touches nothing outside the tables.
func Write(f *os.File, l Layout) error {
	size, err := DiskSize(f)
	if err != nil {
		return err
	}
	if size != l.DiskSize {
		return fmt.Errorf("layout planned for %d bytes, disk %s has %d", l.DiskSize, f.Name(), size)
	}
	t := &gpt.Table{LogicalSectorSize: SectorSize, PhysicalSectorSize: SectorSize, ProtectiveMBR: true}
	for _, p := range l.Parts() {
		t.Partitions = append(t.Partitions, &gpt.Partition{
			Index: p.Number,
			Start: uint64(p.Start / SectorSize),
			End:   uint64(p.End()/SectorSize - 1),
			Size:  uint64(p.Size),
			Type:  partTypes[p.Label],
			Name:  p.Label,
		})
	}
	w, err := file.New(f, false).Writable()
	if err != nil {
		return fmt.Errorf("open %s for writing: %w", f.Name(), err)
	}
	if err := t.Write(w, size); err != nil {
		return fmt.Errorf("write partition table to %s: %w", f.Name(), err)
	}
	return f.Sync()
}

// Read reads the partition table of f and returns it as a twinroot layout, or
// an error wrapping ErrNotTwinroot when the disk is not laid out by twinroot.
func Read(f *os.File) (Layout, error) {
	size, err := DiskSize(f)
	if err != nil {
		return Layout{}, err
	}
	if err := checkGPTHeaders(f, size); err != nil {
		return Layout{}, fmt.Errorf("%w: %s: %v", ErrNotTwinroot, f.Name(), err)
	}
	t, err := gpt.Read(readOnly{f}, SectorSize, SectorSize)
	if err != nil {
		return Layout{}, fmt.Errorf("%w: %s has no readable GPT: %v", ErrNotTwinroot, f.Name(), err)
	}
	l := Layout{DiskSize: size}
	dst := map[string]*Part{LabelBIOS: &l.BIOS, LabelESP: &l.ESP, LabelA: &l.A, LabelB: &l.B, LabelData: &l.Data}
	want := []string{LabelBIOS, LabelESP, LabelA, LabelB, LabelData}
	n := 0
	for _, p := range t.Partitions {
		if p.Type == gpt.Unused {
			continue
		}
		if n >= len(want) || p.Name != want[n] {
			return Layout{}, fmt.Errorf("%w: %s partition %d is %q", ErrNotTwinroot, f.Name(), p.Index, p.Name)
		}
		// go-diskfs checks the table's CRCs, not where it puts the
		// partitions; the slots are written where the table says.
		if p.End < p.Start || p.End >= uint64(size/SectorSize) {
			return Layout{}, fmt.Errorf("%w: %s partition %d (%s) runs from sector %d to %d, outside the disk", ErrNotTwinroot, f.Name(), p.Index, p.Name, p.Start, p.End)
		}
		*dst[p.Name] = Part{Number: p.Index, Label: p.Name, Start: int64(p.Start) * SectorSize, Size: int64(p.End-p.Start+1) * SectorSize}
		n++
	}
	if n != len(want) {
		return Layout{}, fmt.Errorf("%w: %s has %d of the %d twinroot partitions", ErrNotTwinroot, f.Name(), n, len(want))
	}
	parts := l.Parts()
	for i := 1; i < len(parts); i++ {
		if a, b := parts[i-1], parts[i]; a.End() > b.Start {
			return Layout{}, fmt.Errorf("%w: %s partition %d (%s) overlaps partition %d (%s)", ErrNotTwinroot, f.Name(), a.Number, a.Label, b.Number, b.Label)
		}
	}
	return l, nil
}

// maxEntryArray bounds the partition entry array of a GPT read off a disk.
// Tables hold 128 entries of 128 bytes (16 KiB); go-diskfs allocates what
// the header says before it reads, and a damaged header (its CRC right)
// made it ask for terabytes: a fatal out-of-memory, not an error.
const maxEntryArray = 1 * MiB

// checkGPTHeaders refuses a primary or backup GPT header whose entry array
// go-diskfs cannot read safely.
func checkGPTHeaders(r io.ReaderAt, size int64) error {
	for _, lba := range []int64{1, size/SectorSize - 1} {
		h := make([]byte, SectorSize)
		if lba < 1 || size < (lba+1)*SectorSize {
			continue
		}
		if _, err := r.ReadAt(h, lba*SectorSize); err != nil {
			return fmt.Errorf("read GPT header at sector %d: %w", lba, err)
		}
		if string(h[:8]) != "EFI PART" {
			continue
		}
		n, esize := uint64(binary.LittleEndian.Uint32(h[80:])), uint64(binary.LittleEndian.Uint32(h[84:]))
		if n*esize > maxEntryArray {
			return fmt.Errorf("GPT header at sector %d has %d entries of %d bytes", lba, n, esize)
		}
	}
	return nil
}

// HasData reports whether f holds a twinroot data partition.
func HasData(f *os.File) bool {
	_, err := Read(f)
	return err == nil
}

// DiskSize returns the size of a disk file or block device.
func DiskSize(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if fi.Mode().IsRegular() {
		return fi.Size(), nil
	}
	n, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", f.Name(), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("rewind %s: %w", f.Name(), err)
	}
	return n, nil
}

// readOnly hides WriteAt so go-diskfs cannot write while reading.
type readOnly struct{ f *os.File }

func (r readOnly) Stat() (fs.FileInfo, error)                { return r.f.Stat() }
func (r readOnly) Read(p []byte) (int, error)                { return r.f.Read(p) }
func (r readOnly) ReadAt(p []byte, off int64) (int, error)   { return r.f.ReadAt(p, off) }
func (r readOnly) Seek(off int64, whence int) (int64, error) { return r.f.Seek(off, whence) }
func (r readOnly) Close() error                              { return nil }
