package source

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// renameNoReplace moves tmp to dst unless dst exists, atomically: the
// create-only write of a file store. RENAME_NOREPLACE works on ext4, xfs,
// btrfs, vfat and exfat alike (USB media); a link is the fallback where the
// kernel or file system lacks it.
func renameNoReplace(tmp, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return ErrExists
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		return linkNoReplace(tmp, dst)
	}
	return fmt.Errorf("rename into place: %w", err)
}
