package grub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ReadWriterAt is a disk: a block device or an image file.
type ReadWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// ErrCoreDoesNotFit means core.img is larger than the BIOS boot partition.
var ErrCoreDoesNotFit = errors.New("core.img does not fit the BIOS boot partition")

const sectorSize = 512

// Offsets in boot.img and in core.img's first sector (GRUB's boot.S,
// diskboot.S and setup.c).
const (
	bpbStart       = 0x03  // BPB kept from the disk: [0x03, 0x5a)
	bpbEnd         = 0x5a  //
	kernelSector   = 0x5c  // u64 LE: LBA of core.img's first sector
	driveCheck     = 0x66  // 2-byte jmp that skips the boot drive fix-up
	mbrKeep        = 0x1b8 // disk signature, partition table, 0x55aa kept
	blocklistStart = sectorSize - 12
)

// InstallBIOS makes the disk boot GRUB under a BIOS, as grub-install does for
// a GPT disk: core.img at the start of the BIOS boot partition (biosStart and
// biosSize in bytes) and boot.img in the MBR pointing at it. The MBR keeps
// the disk's own BPB area and its partition table (the protective MBR), so the
// GPT stays valid. Nothing is written when core.img does not fit or the disk
// has no MBR signature yet; core.img is written before the MBR that points
// at it.
func InstallBIOS(disk ReadWriterAt, biosStart, biosSize int64, img Images) error {
	if len(img.BootImg) != sectorSize {
		return fmt.Errorf("install BIOS GRUB: boot.img is %d bytes, want %d; nothing written", len(img.BootImg), sectorSize)
	}
	if biosStart <= 0 || biosStart%sectorSize != 0 || biosSize%sectorSize != 0 {
		return fmt.Errorf("install BIOS GRUB: BIOS boot partition at %d size %d is not sector aligned; nothing written", biosStart, biosSize)
	}
	if len(img.CoreImg) < sectorSize {
		return fmt.Errorf("install BIOS GRUB: core.img is %d bytes, not an i386-pc core image; nothing written", len(img.CoreImg))
	}
	sectors := (int64(len(img.CoreImg)) + sectorSize - 1) / sectorSize
	if sectors*sectorSize > biosSize {
		return fmt.Errorf("install BIOS GRUB: %w: %d bytes in a %d-byte partition; nothing written", ErrCoreDoesNotFit, sectors*sectorSize, biosSize)
	}
	if sectors-1 > 0xffff {
		return fmt.Errorf("install BIOS GRUB: %w: %d sectors, the blocklist holds at most 65536", ErrCoreDoesNotFit, sectors)
	}

	mbr := make([]byte, sectorSize)
	if _, err := disk.ReadAt(mbr, 0); err != nil {
		return fmt.Errorf("install BIOS GRUB: read MBR: %w", err)
	}
	if mbr[0x1fe] != 0x55 || mbr[0x1ff] != 0xaa {
		return errors.New("install BIOS GRUB: the disk has no MBR signature (write the GPT and its protective MBR first); nothing written")
	}

	coreLBA := uint64(biosStart / sectorSize)
	core := make([]byte, sectors*sectorSize)
	copy(core, img.CoreImg)
	// One blocklist entry covers the rest of core.img; the segment and the
	// zero terminator below it are left as grub-mkimage wrote them.
	binary.LittleEndian.PutUint64(core[blocklistStart:], coreLBA+1)
	binary.LittleEndian.PutUint16(core[blocklistStart+8:], uint16(sectors-1))

	boot := make([]byte, sectorSize)
	copy(boot, img.BootImg)
	copy(boot[bpbStart:bpbEnd], mbr[bpbStart:bpbEnd])
	copy(boot[mbrKeep:], mbr[mbrKeep:])
	binary.LittleEndian.PutUint64(boot[kernelSector:], coreLBA)
	// Some BIOSes pass a floppy number in %dl when booting a hard disk;
	// grub-install replaces this jump with NOPs for hard disks so that boot.img
	// uses 0x80 instead.
	boot[driveCheck], boot[driveCheck+1] = 0x90, 0x90

	if _, err := disk.WriteAt(core, biosStart); err != nil {
		return fmt.Errorf("install BIOS GRUB: write core.img at %d: %w", biosStart, err)
	}
	if _, err := disk.WriteAt(boot, 0); err != nil {
		return fmt.Errorf("install BIOS GRUB: write boot.img to the MBR: %w", err)
	}
	return nil
}
