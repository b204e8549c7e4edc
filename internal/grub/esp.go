package grub

import (
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// ESPLabel is the volume label of the ESP's FAT32 file system.
const ESPLabel = "TWINROOT"

// File is a file to put on the ESP.
type File struct {
	Path string // absolute, like "/EFI/BOOT/BOOTX64.EFI"
	Data []byte
}

// MakeESP formats the region [offset, offset+size) of disk as FAT32 and
// writes files into it, creating their directories. Every file ends up as one
// run of clusters: the GRUB environment blocks are later rewritten in place
// at the offset LocateFile reports, and GRUB's save_env writes the same
// sectors. The file system is reproducible apart from timestamps (volume id 0;
// SOURCE_DATE_EPOCH fixes the timestamps).
//
// go-diskfs v1.9.4 makes the FAT too small for some sizes (64 MiB, checked
// with fsck.fat): MakeESP refuses those. 128 MiB, the ESP's size, is right.
func MakeESP(disk *os.File, offset, size int64, files []File) error {
	if offset <= 0 || offset%sectorSize != 0 || size%sectorSize != 0 {
		return fmt.Errorf("make ESP: region at %d size %d is not sector aligned", offset, size)
	}
	seen := map[string]bool{}
	dirs := map[string]bool{}
	for _, f := range files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return fmt.Errorf("make ESP: file path %q is not a clean absolute path", f.Path)
		}
		if seen[f.Path] {
			return fmt.Errorf("make ESP: file %s given twice", f.Path)
		}
		seen[f.Path] = true
		if d := path.Dir(f.Path); d != "/" {
			dirs[d] = true
		}
	}

	fs, err := fat32.Create(file.New(disk, false), size, offset, sectorSize, ESPLabel, true)
	if err != nil {
		return fmt.Errorf("make ESP: format FAT32 at %d: %w", offset, err)
	}
	// Directories first, in a fixed order, so the layout only depends on the
	// file list.
	sorted := make([]string, 0, len(dirs))
	for d := range dirs {
		sorted = append(sorted, d)
	}
	sort.Strings(sorted)
	for _, d := range sorted {
		if err := fs.Mkdir(d); err != nil {
			return fmt.Errorf("make ESP: mkdir %s: %w", d, err)
		}
	}
	for _, f := range files {
		if err := writeESPFile(fs, f); err != nil {
			return fmt.Errorf("make ESP: %w", err)
		}
	}
	// go-diskfs allocates a file's first cluster before the directory entry
	// that may need a new directory cluster, so a file can come out split in
	// two; and it leaves details fsck.fat reports. Both are fixed once
	// go-diskfs is done (it keeps the FAT in memory and would write its own
	// copy back).
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	if err := finishFAT32(disk, offset, paths); err != nil {
		return fmt.Errorf("make ESP: %w", err)
	}
	for _, f := range files {
		if _, _, err := LocateFile(disk, offset, f.Path); err != nil {
			return fmt.Errorf("make ESP: check: %w", err)
		}
	}
	return nil
}

func writeESPFile(fs *fat32.FileSystem, f File) error {
	w, err := fs.OpenFile(f.Path, os.O_CREATE|os.O_RDWR)
	if err != nil {
		return fmt.Errorf("create %s: %w", f.Path, err)
	}
	defer w.Close()
	// One Write allocates all clusters at once: the first free ones, in a
	// row, on a file system nothing was ever deleted from.
	if len(f.Data) > 0 {
		n, err := w.Write(f.Data)
		if err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
		if n != len(f.Data) {
			return fmt.Errorf("write %s: wrote %d of %d bytes", f.Path, n, len(f.Data))
		}
	}
	return nil
}

// ReadFile reads a file from the FAT32 ESP at [espOffset, espOffset+espSize).
func ReadFile(disk *os.File, espOffset, espSize int64, path string) ([]byte, error) {
	fs, err := fat32.Read(file.New(disk, true), espSize, espOffset, sectorSize)
	if err != nil {
		return nil, fmt.Errorf("read ESP at %d: %w", espOffset, err)
	}
	// go-diskfs cannot open an empty file that owns no cluster (as fsck.fat
	// wants it); its Stat takes io/fs paths.
	if fi, err := fs.Stat(strings.TrimPrefix(path, "/")); err == nil && fi.Size() == 0 && !fi.IsDir() {
		return []byte{}, nil
	}
	b, err := fs.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s from the ESP: %w", path, err)
	}
	return b, nil
}
