package image

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"

	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/refusal"
)

// ErrNotSquashfs is returned for bytes that are not a squashfs image.
var ErrNotSquashfs = refusal.New("not a squashfs slot image")

// Info describes a slot image.
type Info struct {
	// Size is the length of the image in bytes (the squashfs bytes_used,
	// rounded up to 4 KiB as mksquashfs pads it).
	Size        int64  `json:"size"`
	Compression string `json:"compression"`
	Version     string `json:"version,omitempty"`
}

const superblockSize = 96

var compressions = map[uint16]string{1: "gzip", 2: "lzma", 3: "lzo", 4: "xz", 5: "lz4", 6: "zstd"}

// Probe reads the squashfs superblock at off in r.
func Probe(r io.ReaderAt, off int64) (Info, error) {
	sb := make([]byte, superblockSize)
	if _, err := r.ReadAt(sb, off); err != nil {
		return Info{}, fmt.Errorf("%w: read superblock: %v", ErrNotSquashfs, err)
	}
	if string(sb[0:4]) != "hsqs" {
		return Info{}, fmt.Errorf("%w: bad magic %q", ErrNotSquashfs, sb[0:4])
	}
	if major := binary.LittleEndian.Uint16(sb[28:]); major != 4 {
		return Info{}, fmt.Errorf("%w: squashfs version %d, want 4", ErrNotSquashfs, major)
	}
	// bytes_used comes off the disk: less than a superblock is no image,
	// and one too large to round up to 4 KiB came out a negative size.
	used := binary.LittleEndian.Uint64(sb[40:])
	if used < superblockSize || used > math.MaxInt64-4095 {
		return Info{}, fmt.Errorf("%w: bytes_used %d is no image size", ErrNotSquashfs, used)
	}
	comp, ok := compressions[binary.LittleEndian.Uint16(sb[20:])]
	if !ok {
		comp = fmt.Sprintf("unknown(%d)", binary.LittleEndian.Uint16(sb[20:]))
	}
	return Info{Size: int64(used+4095) / 4096 * 4096, Compression: comp}, nil
}

// Open opens a slot image: a raw squashfs file, or a build output directory
// holding slot.img. It checks the image and returns its size and version.
func Open(path string) (*os.File, Info, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "slot.img")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, Info{}, fmt.Errorf("open image: %w", err)
	}
	info, err := Probe(f, 0)
	if err != nil {
		f.Close()
		return nil, Info{}, fmt.Errorf("%s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Info{}, err
	}
	if info.Size > fi.Size() {
		info.Size = fi.Size()
	}
	if info.Compression == "zstd" {
		f.Close()
		return nil, Info{}, fmt.Errorf("%s: %w: zstd squashfs cannot be read by GRUB 2.06; build with xz or gzip", path, ErrNotSquashfs)
	}
	if files, err := OpenFiles(f, 0, info.Size); err == nil {
		info.Version, _ = files.Version()
	}
	return f, info, nil
}

// Files reads files from a squashfs slot image whose tables are read once,
// for callers that need several files of one image.
type Files struct{ fs *squashfs.FileSystem }

// recoverDamaged turns a panic of go-diskfs into an error. Its squashfs
// reader trusts the tables it reads and panics on damaged ones (an index or
// a slice out of range); a slot holds any bytes after a cut write or a
// failing disk, and reading it must not take the updater down.
func recoverDamaged(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: damaged squashfs: %v", ErrNotSquashfs, r)
	}
}

// OpenFiles reads the squashfs image at [off, off+size) of r.
func OpenFiles(r *os.File, off, size int64) (_ *Files, err error) {
	defer recoverDamaged(&err)
	fs, err := squashfs.Read(file.New(imageFile{r, off, off + size}, true), size, off, 0)
	if err != nil {
		return nil, fmt.Errorf("read squashfs: %w", err)
	}
	return &Files{fs: fs}, nil
}

// imageFile is the file of a squashfs image that refuses reads outside the
// image. go-diskfs reads a metadata table block after block until it has
// the size an inode gives, and takes a block header it cannot read as an
// empty block, which lz4 decompresses to nothing without an error: on a
// damaged image it read empty blocks two bytes apart past the end of the
// file for ever (found by FuzzReadSlot), where an error now stops it.
type imageFile struct {
	*os.File
	start, end int64
}

func (f imageFile) ReadAt(p []byte, off int64) (int, error) {
	if off < f.start || off+int64(len(p)) > f.end {
		return 0, fmt.Errorf("read %d bytes at %d: outside the image [%d, %d)", len(p), off, f.start, f.end)
	}
	return f.File.ReadAt(p, off)
}

// ReadFile reads one file of the image.
func (f *Files) ReadFile(name string) (_ []byte, err error) {
	defer recoverDamaged(&err)
	// go-diskfs wants paths relative to the root.
	fh, err := f.fs.OpenFile(strings.TrimPrefix(name, "/"), os.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("open %s in image: %w", name, err)
	}
	defer fh.Close()
	return io.ReadAll(fh)
}

// Has reports whether the image holds name (a file or a directory).
func (f *Files) Has(name string) bool { return f.open(name) == nil }

func (f *Files) open(name string) (err error) {
	defer recoverDamaged(&err)
	fh, err := f.fs.OpenFile(strings.TrimPrefix(name, "/"), os.O_RDONLY)
	if err != nil {
		return err
	}
	return fh.Close()
}

// DirFiles reads every regular file of one directory, by name; a missing
// directory gives an empty map.
func (f *Files) DirFiles(dir string) (_ map[string][]byte, err error) {
	defer recoverDamaged(&err)
	rel := strings.Trim(dir, "/")
	ents, err := f.fs.ReadDir(rel)
	if err != nil {
		return map[string][]byte{}, nil
	}
	out := map[string][]byte{}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := f.ReadFile(rel + "/" + e.Name())
		if err != nil {
			return nil, err
		}
		out[e.Name()] = b
	}
	return out, nil
}

// Version returns the image's /etc/twinroot/version.
func (f *Files) Version() (string, error) {
	b, err := f.ReadFile(VersionFile)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// Serial returns the image's /etc/twinroot/serial (0 when the image has
// none: built before serials existed).
func (f *Files) Serial() (uint64, error) {
	b, err := f.ReadFile(SerialFile)
	if err != nil {
		return 0, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s in image: %w", SerialFile, err)
	}
	return n, nil
}

// Slot is what the image in a slot says about itself: the one reader of a
// slot's version, serial and trusted keys, shared by the device's status,
// the installer's inspect, the boot and the check.
type Slot struct {
	Info
	Serial uint64 `json:"serial"`
	// Keys are the IDs of the public keys in TrustedDir, sorted.
	Keys    []string  `json:"trusted_keys"`
	Trusted keys.Ring `json:"-"`
}

// ReadSlot reads the image at off in r, at most limit bytes (the slot's
// size): its superblock, version, serial and trusted keys. An image without
// a version file reads as version ""; a serial or key file that does not
// parse is an error.
func ReadSlot(r *os.File, off, limit int64) (Slot, error) {
	info, err := Probe(r, off)
	if err != nil {
		return Slot{}, err
	}
	info.Size = min(info.Size, limit)
	files, err := OpenFiles(r, off, info.Size)
	if err != nil {
		return Slot{}, err
	}
	s := Slot{Info: info}
	s.Version, _ = files.Version()
	if s.Serial, err = files.Serial(); err != nil {
		return Slot{}, err
	}
	pubs, err := files.DirFiles(TrustedDir)
	if err != nil {
		return Slot{}, err
	}
	if s.Trusted, err = keys.ParseTrusted(TrustedDir, pubs); err != nil {
		return Slot{}, err
	}
	// The ring is in file name order; the IDs are shown sorted.
	s.Keys = slices.Sorted(slices.Values(s.Trusted.IDs()))
	return s, nil
}
