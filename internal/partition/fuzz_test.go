package partition

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/twinroot/twinroot/internal/testfuzz"
)

// gptSectors are the protective MBR, the primary GPT header and its 128
// entries: what a fuzz input replaces at the start of the disk.
const gptSectors = 34

// FuzzRead writes arbitrary primary GPTs on a disk and reads its layout:
// installer inspect and install read the table of whatever disk they are
// given, the updater that of its own disk on every start. With fix set,
// the CRCs are made right first, so the inputs reach the table's meaning.
// A layout Read accepts has the five partitions in order, each inside the
// disk and none overlapping the next: the updater writes slots by it.
func FuzzRead(f *testing.F) {
	size := MinDiskSize(MinSlotSize)
	disk, err := os.Create(filepath.Join(f.TempDir(), "disk.img"))
	if err != nil {
		f.Fatal(err)
	}
	defer disk.Close()
	if err := disk.Truncate(size); err != nil {
		f.Fatal(err)
	}
	l, err := Plan(size, MinSlotSize)
	if err != nil {
		f.Fatal(err)
	}
	if err := Write(disk, l); err != nil {
		f.Fatal(err)
	}
	// The MBR, the header and the first entries: the rest of the table is
	// zeros, as a shorter input is padded.
	seed := make([]byte, 4*SectorSize)
	if _, err := disk.ReadAt(seed, 0); err != nil {
		f.Fatal(err)
	}
	testfuzz.Add(f, "twinroot", seed, false)
	overlap := append([]byte(nil), seed...)
	// Slot b starts inside slot a.
	entry := 2*SectorSize + 3*128
	binary.LittleEndian.PutUint64(overlap[entry+32:], uint64(l.A.Start/SectorSize+1))
	testfuzz.Add(f, "b-overlaps-a", overlap, true)
	past := append([]byte(nil), seed...)
	// The data partition ends past the disk.
	binary.LittleEndian.PutUint64(past[2*SectorSize+4*128+40:], uint64(size/SectorSize+100))
	testfuzz.Add(f, "data-past-the-end", past, true)
	testfuzz.Add(f, "blank", []byte{}, false)
	// Found by this target: go-diskfs allocated 2^47 bytes for it.
	huge := append([]byte(nil), seed...)
	binary.LittleEndian.PutUint32(huge[SectorSize+80:], 1<<31)
	binary.LittleEndian.PutUint32(huge[SectorSize+84:], 1<<16)
	testfuzz.Add(f, "huge-entry-array", huge, true)
	empty := append([]byte(nil), seed...)
	binary.LittleEndian.PutUint32(empty[SectorSize+84:], 0)
	testfuzz.Add(f, "zero-byte-entries", empty, true)
	f.Fuzz(func(t *testing.T, table []byte, fix bool) {
		b := make([]byte, gptSectors*SectorSize)
		copy(b, table)
		if fix {
			fixCRCs(b)
		}
		if _, err := disk.WriteAt(b, 0); err != nil {
			t.Fatal(err)
		}
		l, err := Read(disk)
		if err != nil {
			return
		}
		parts := l.Parts()
		labels := []string{LabelBIOS, LabelESP, LabelA, LabelB, LabelData}
		for i, p := range parts {
			if p.Label != labels[i] || p.Start < 0 || p.Size <= 0 || p.End() > l.DiskSize {
				t.Fatalf("partition %d is %+v on a disk of %d bytes", i+1, p, l.DiskSize)
			}
			if i > 0 && parts[i-1].End() > p.Start {
				t.Fatalf("%s %+v overlaps %s %+v", parts[i-1].Label, parts[i-1], p.Label, p)
			}
		}
	})
}

// fixCRCs sets the header's CRCs over what the header says it covers, when
// that lies within b.
func fixCRCs(b []byte) {
	h := b[SectorSize:]
	hsize := int(binary.LittleEndian.Uint32(h[12:]))
	entriesLBA := binary.LittleEndian.Uint64(h[72:])
	n, esize := uint64(binary.LittleEndian.Uint32(h[80:])), uint64(binary.LittleEndian.Uint32(h[84:]))
	if entriesLBA < gptSectors && n*esize <= uint64(len(b)) && entriesLBA*SectorSize+n*esize <= uint64(len(b)) {
		start := entriesLBA * SectorSize
		binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(b[start:start+n*esize]))
	}
	if hsize >= 92 && hsize <= SectorSize {
		binary.LittleEndian.PutUint32(h[16:], 0)
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:hsize]))
	}
}
