package grub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// ErrNotContiguous means a file's clusters are not one run on disk, so it
// cannot be rewritten in place at one offset.
var ErrNotContiguous = errors.New("file is not contiguous")

// A small FAT32 reader of our own: go-diskfs does not say where a file's
// bytes are on the disk, and the boot state is rewritten in place there.

const (
	fatEOC      = 0x0ffffff8 // entries >= this end a chain
	fatMask     = 0x0fffffff // FAT32 entries are 28 bits
	attrDir     = 0x10
	attrVolume  = 0x08
	attrLFN     = 0x0f
	dirEntSize  = 32
	maxDirBytes = 65536 * dirEntSize // FAT's limit on one directory
)

// fatVolume is the geometry of a FAT32 file system, from its boot sector.
// Offsets are absolute on the disk.
type fatVolume struct {
	r           io.ReaderAt
	fatOffset   int64  // first FAT
	fatSize     int64  // bytes per FAT
	numFATs     int64  // copies of the FAT
	dataOffset  int64  // cluster 2
	clusterSize int64  // bytes
	maxCluster  uint32 // highest valid cluster number
	rootCluster uint32
	sectorSize  int64
	bootSectors []int64 // the boot sector and its backup, in sectors
	fsInfo      []int64 // the FSInfo sector and its backup, in sectors
	fatShort    bool    // the FAT has fewer entries than the data area clusters
}

func readFATVolume(r io.ReaderAt, base int64) (*fatVolume, error) {
	bs := make([]byte, sectorSize)
	if _, err := r.ReadAt(bs, base); err != nil {
		return nil, fmt.Errorf("read FAT boot sector at %d: %w", base, err)
	}
	le16 := func(o int) int64 { return int64(binary.LittleEndian.Uint16(bs[o:])) }
	le32 := func(o int) int64 { return int64(binary.LittleEndian.Uint32(bs[o:])) }
	if bs[0x1fe] != 0x55 || bs[0x1ff] != 0xaa {
		return nil, fmt.Errorf("no FAT file system at %d: no boot sector signature", base)
	}
	bps, spc := le16(0x0b), int64(bs[0x0d])
	reserved, fats := le16(0x0e), int64(bs[0x10])
	rootEntries, total16, fat16Size := le16(0x11), le16(0x13), le16(0x16)
	total, fatSectors, root := le32(0x20), le32(0x24), uint32(le32(0x2c))
	switch {
	case bps < 512 || bps > 4096 || bps&(bps-1) != 0:
		return nil, fmt.Errorf("no FAT file system at %d: %d bytes per sector", base, bps)
	case spc == 0 || spc&(spc-1) != 0:
		return nil, fmt.Errorf("no FAT file system at %d: %d sectors per cluster", base, spc)
	case rootEntries != 0 || fat16Size != 0 || total16 != 0 || fatSectors == 0:
		return nil, fmt.Errorf("FAT file system at %d is not FAT32", base)
	case reserved == 0 || fats == 0 || total == 0:
		return nil, fmt.Errorf("FAT file system at %d has a broken boot sector", base)
	}
	dataSectors := total - reserved - fats*fatSectors
	if dataSectors < spc {
		return nil, fmt.Errorf("FAT file system at %d has no data area", base)
	}
	clusters := dataSectors / spc
	dataClusters := clusters
	if fatEntries := fatSectors * bps / 4; clusters+2 > fatEntries {
		clusters = fatEntries - 2
	}
	if clusters > fatMask-0x10 {
		clusters = fatMask - 0x10
	}
	v := &fatVolume{
		r:           r,
		fatOffset:   base + reserved*bps,
		fatSize:     fatSectors * bps,
		numFATs:     fats,
		dataOffset:  base + (reserved+fats*fatSectors)*bps,
		clusterSize: spc * bps,
		maxCluster:  uint32(clusters + 1),
		rootCluster: root,
		sectorSize:  bps,
		bootSectors: []int64{0},
		fatShort:    dataClusters+2 > fatSectors*bps/4,
	}
	fsInfo, backup := le16(0x30), le16(0x32)
	if fsInfo != 0 && fsInfo != 0xffff && fsInfo < reserved {
		v.fsInfo = []int64{fsInfo}
	}
	if backup != 0 && backup != 0xffff && backup+fsInfo < reserved {
		v.bootSectors = append(v.bootSectors, backup)
		if v.fsInfo != nil {
			v.fsInfo = append(v.fsInfo, backup+fsInfo)
		}
	}
	if !v.valid(root) {
		return nil, fmt.Errorf("FAT file system at %d: root directory cluster %d out of range", base, root)
	}
	return v, nil
}

func (v *fatVolume) valid(c uint32) bool { return c >= 2 && c <= v.maxCluster }

func (v *fatVolume) clusterOffset(c uint32) int64 {
	return v.dataOffset + int64(c-2)*v.clusterSize
}

// next returns the FAT entry of cluster c (first FAT).
func (v *fatVolume) next(c uint32) (uint32, error) {
	var b [4]byte
	if _, err := v.r.ReadAt(b[:], v.fatOffset+4*int64(c)); err != nil {
		return 0, fmt.Errorf("read FAT entry %d: %w", c, err)
	}
	return binary.LittleEndian.Uint32(b[:]) & fatMask, nil
}

// chain follows the cluster chain from first, at most limit clusters.
func (v *fatVolume) chain(first uint32, limit int64) ([]uint32, error) {
	var cs []uint32
	for c := first; ; {
		if !v.valid(c) {
			return nil, fmt.Errorf("cluster chain from %d: bad cluster %d", first, c)
		}
		if int64(len(cs)) >= limit {
			return nil, fmt.Errorf("cluster chain from %d: longer than %d clusters", first, limit)
		}
		cs = append(cs, c)
		n, err := v.next(c)
		if err != nil {
			return nil, err
		}
		if n >= fatEOC {
			return cs, nil
		}
		c = n
	}
}

// fatDirent is one file or directory of a directory.
type fatDirent struct {
	long, short string
	attr        byte
	cluster     uint32
	size        int64
	at          int64 // disk offset of the 32-byte short entry
}

func (e fatDirent) matches(name string) bool {
	return (e.long != "" && strings.EqualFold(e.long, name)) || strings.EqualFold(e.short, name)
}

// readDir lists the directory whose first cluster is c.
func (v *fatVolume) readDir(c uint32) ([]fatDirent, error) {
	cs, err := v.chain(c, maxDirBytes/v.clusterSize+1)
	if err != nil {
		return nil, fmt.Errorf("read directory: %w", err)
	}
	var (
		ents  []fatDirent
		lfn   []uint16 // collected long name, in order
		lfnOK bool
		sum   byte
		buf   = make([]byte, v.clusterSize)
	)
	for _, cl := range cs {
		off := v.clusterOffset(cl)
		if _, err := v.r.ReadAt(buf, off); err != nil {
			return nil, fmt.Errorf("read directory cluster %d: %w", cl, err)
		}
		for i := 0; i+dirEntSize <= len(buf); i += dirEntSize {
			d := buf[i : i+dirEntSize]
			switch {
			case d[0] == 0:
				return ents, nil
			case d[0] == 0xe5:
				lfnOK = false
				continue
			case d[11]&0x3f == attrLFN:
				seq := int(d[0] & 0x1f)
				if d[0]&0x40 != 0 {
					lfn, lfnOK, sum = make([]uint16, seq*13), seq > 0, d[13]
				}
				if !lfnOK || seq == 0 || seq*13 > len(lfn) || d[13] != sum {
					lfnOK = false
					continue
				}
				part := lfn[(seq-1)*13:]
				for j, o := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
					part[j] = binary.LittleEndian.Uint16(d[o:])
				}
				continue
			}
			e := fatDirent{
				short:   shortName(d),
				attr:    d[11],
				cluster: uint32(binary.LittleEndian.Uint16(d[20:]))<<16 | uint32(binary.LittleEndian.Uint16(d[26:])),
				size:    int64(binary.LittleEndian.Uint32(d[28:])),
				at:      off + int64(i),
			}
			if lfnOK && lfnChecksum(d[:11]) == sum {
				e.long = decodeLFN(lfn)
			}
			lfnOK = false
			if e.attr&attrVolume == 0 {
				ents = append(ents, e)
			}
		}
	}
	return ents, nil
}

func shortName(d []byte) string {
	base := strings.TrimRight(string(d[0:8]), " ")
	if d[0] == 0x05 {
		base = "\xe5" + base[1:]
	}
	if ext := strings.TrimRight(string(d[8:11]), " "); ext != "" {
		return base + "." + ext
	}
	return base
}

func lfnChecksum(name []byte) byte {
	var s byte
	for _, c := range name {
		s = (s>>1 | s<<7) + c
	}
	return s
}

func decodeLFN(u []uint16) string {
	for i, c := range u {
		if c == 0 || c == 0xffff {
			u = u[:i]
			break
		}
	}
	return string(utf16.Decode(u))
}

// lookup finds path ("/EFI/BOOT/BOOTX64.EFI"), comparing names like FAT
// does: case-insensitively, by long or short name.
func (v *fatVolume) lookup(path string) (fatDirent, error) {
	cur := fatDirent{attr: attrDir, cluster: v.rootCluster}
	for _, name := range strings.Split(strings.Trim(path, "/"), "/") {
		if name == "" {
			continue
		}
		if cur.attr&attrDir == 0 {
			return fatDirent{}, fmt.Errorf("find %s: %s is not a directory", path, cur.short)
		}
		dir := cur.cluster
		if dir == 0 { // ".." of a top-level directory
			dir = v.rootCluster
		}
		ents, err := v.readDir(dir)
		if err != nil {
			return fatDirent{}, fmt.Errorf("find %s: %w", path, err)
		}
		found := false
		for _, e := range ents {
			if e.matches(name) {
				cur, found = e, true
				break
			}
		}
		if !found {
			return fatDirent{}, fmt.Errorf("find %s: %s not found", path, name)
		}
	}
	return cur, nil
}

// extent returns the disk offset of a file's data, or ErrNotContiguous.
func (v *fatVolume) extent(path string) (fatDirent, int64, error) {
	e, err := v.lookup(path)
	if err != nil {
		return e, 0, err
	}
	if e.attr&attrDir != 0 {
		return e, 0, fmt.Errorf("%s is a directory", path)
	}
	if e.size == 0 {
		if v.valid(e.cluster) {
			return e, v.clusterOffset(e.cluster), nil
		}
		return e, 0, nil
	}
	n := (e.size + v.clusterSize - 1) / v.clusterSize
	if !v.valid(e.cluster) || int64(e.cluster)+n-1 > int64(v.maxCluster) {
		return e, 0, fmt.Errorf("%s: bad first cluster %d", path, e.cluster)
	}
	for i, c := int64(1), e.cluster; i < n; i, c = i+1, c+1 {
		nx, err := v.next(c)
		if err != nil {
			return e, 0, fmt.Errorf("%s: %w", path, err)
		}
		if nx >= fatEOC {
			return e, 0, fmt.Errorf("%s: cluster chain ends after %d of %d clusters", path, i, n)
		}
		if nx != c+1 {
			return e, 0, fmt.Errorf("%s: %w: cluster %d is followed by %d", path, ErrNotContiguous, c, nx)
		}
	}
	return e, v.clusterOffset(e.cluster), nil
}

// LocateFile finds path in the FAT32 file system at espOffset on disk and
// returns the disk offset and size of its data. A file that is not one run
// of clusters gives ErrNotContiguous: rewriting it in place needs one extent.
func LocateFile(disk io.ReaderAt, espOffset int64, path string) (off, size int64, err error) {
	v, err := readFATVolume(disk, espOffset)
	if err != nil {
		return 0, 0, fmt.Errorf("locate %s on the ESP: %w", path, err)
	}
	e, off, err := v.extent(path)
	if err != nil {
		return 0, 0, fmt.Errorf("locate on the ESP: %w", err)
	}
	return off, e.size, nil
}

// fatTable is a FAT loaded into memory for changes.
type fatTable []byte

func (t fatTable) get(c uint32) uint32 { return binary.LittleEndian.Uint32(t[4*c:]) & fatMask }

func (t fatTable) set(c, val uint32) {
	hi := binary.LittleEndian.Uint32(t[4*c:]) &^ fatMask // reserved bits stay
	binary.LittleEndian.PutUint32(t[4*c:], hi|val)
}

func (v *fatVolume) loadFAT() (fatTable, error) {
	t := make(fatTable, v.fatSize)
	if _, err := v.r.ReadAt(t, v.fatOffset); err != nil {
		return nil, fmt.Errorf("read FAT: %w", err)
	}
	return t, nil
}

// storeFAT writes t to every copy of the FAT.
func (v *fatVolume) storeFAT(w io.WriterAt, t fatTable) error {
	for i := int64(0); i < v.numFATs; i++ {
		if _, err := w.WriteAt(t, v.fatOffset+i*v.fatSize); err != nil {
			return fmt.Errorf("write FAT %d: %w", i, err)
		}
	}
	return nil
}

// setFirstCluster points the directory entry at disk offset at to cluster c.
func setFirstCluster(w io.WriterAt, at int64, c uint32) error {
	var b [2]byte
	binary.LittleEndian.PutUint16(b[:], uint16(c>>16))
	if _, err := w.WriteAt(b[:], at+20); err != nil {
		return fmt.Errorf("write directory entry at %d: %w", at, err)
	}
	binary.LittleEndian.PutUint16(b[:], uint16(c))
	if _, err := w.WriteAt(b[:], at+26); err != nil {
		return fmt.Errorf("write directory entry at %d: %w", at, err)
	}
	return nil
}

// finishFAT32 repairs what go-diskfs v1.9.4 leaves for fsck.fat to report,
// then makes every file of paths contiguous:
//   - ".." of a directory in the root names cluster 0, not the root's cluster;
//   - an empty file owns no cluster;
//   - FSInfo holds the real free cluster count;
//   - the BPB's hidden sectors is the partition's first LBA.
func finishFAT32(disk ReadWriterAt, base int64, paths []string) error {
	v, err := readFATVolume(disk, base)
	if err != nil {
		return err
	}
	if v.fatShort {
		// go-diskfs v1.9.4 computes too small a FAT for some sizes (64 MiB).
		return fmt.Errorf("the FAT has fewer entries than the file system has clusters (a go-diskfs bug at this size; 128 MiB works)")
	}
	t, err := v.loadFAT()
	if err != nil {
		return err
	}
	var walk func(dir, parent uint32, depth int) error
	walk = func(dir, parent uint32, depth int) error {
		if depth > 32 {
			return errors.New("directories nested too deep")
		}
		ents, err := v.readDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			switch {
			case e.short == "..":
				want := parent
				if parent == v.rootCluster {
					want = 0
				}
				if e.cluster != want {
					if err := setFirstCluster(disk, e.at, want); err != nil {
						return err
					}
				}
			case e.short == ".":
			case e.attr&attrDir != 0:
				if err := walk(e.cluster, dir, depth+1); err != nil {
					return err
				}
			case e.size == 0 && e.cluster != 0:
				cs, err := v.chain(e.cluster, int64(v.maxCluster))
				if err != nil {
					return err
				}
				for _, c := range cs {
					t.set(c, 0)
				}
				if err := setFirstCluster(disk, e.at, 0); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(v.rootCluster, 0, 0); err != nil {
		return fmt.Errorf("check directories: %w", err)
	}
	if err := v.storeFAT(disk, t); err != nil {
		return err
	}

	for _, p := range paths {
		if err := makeContiguous(disk, base, p); err != nil {
			return err
		}
	}

	if t, err = v.loadFAT(); err != nil {
		return err
	}
	free := uint32(0)
	for c := uint32(2); c <= v.maxCluster; c++ {
		if t.get(c) == 0 {
			free++
		}
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], free)
	for _, s := range v.fsInfo {
		if _, err := disk.WriteAt(b[:], base+s*v.sectorSize+0x1e8); err != nil {
			return fmt.Errorf("write FSInfo: %w", err)
		}
	}
	binary.LittleEndian.PutUint32(b[:], uint32(base/sectorSize))
	for _, s := range v.bootSectors {
		if _, err := disk.WriteAt(b[:], base+s*v.sectorSize+0x1c); err != nil {
			return fmt.Errorf("write boot sector: %w", err)
		}
	}
	return nil
}

// makeContiguous moves the data of a fragmented file to the first free run of
// clusters large enough for it, updating the FATs and its directory entry.
// The old clusters become free.
func makeContiguous(disk ReadWriterAt, espOffset int64, path string) error {
	v, err := readFATVolume(disk, espOffset)
	if err != nil {
		return err
	}
	e, _, err := v.extent(path)
	if err == nil || !errors.Is(err, ErrNotContiguous) {
		return err
	}
	n := (e.size + v.clusterSize - 1) / v.clusterSize
	old, err := v.chain(e.cluster, n)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	data := make([]byte, n*v.clusterSize)
	for i, c := range old {
		if _, err := disk.ReadAt(data[int64(i)*v.clusterSize:][:v.clusterSize], v.clusterOffset(c)); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
	}
	t, err := v.loadFAT()
	if err != nil {
		return err
	}
	start, run := uint32(0), int64(0)
	for c := uint32(2); c <= v.maxCluster && run < n; c++ {
		if t.get(c) != 0 {
			run = 0
			continue
		}
		if run == 0 {
			start = c
		}
		run++
	}
	if run < n {
		return fmt.Errorf("move %s: no run of %d free clusters on the ESP", path, n)
	}
	if _, err := disk.WriteAt(data, v.clusterOffset(start)); err != nil {
		return fmt.Errorf("move %s: %w", path, err)
	}
	for _, c := range old {
		t.set(c, 0)
	}
	for i := uint32(0); i < uint32(n)-1; i++ {
		t.set(start+i, start+i+1)
	}
	t.set(start+uint32(n)-1, fatMask)
	if err := v.storeFAT(disk, t); err != nil {
		return fmt.Errorf("move %s: %w", path, err)
	}
	if err := setFirstCluster(disk, e.at, start); err != nil {
		return fmt.Errorf("move %s: %w", path, err)
	}
	return nil
}
