package partition

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// MountData mounts the data partition of the disk image file at path
// (ext4, at the layout's offset, through a loop device the kernel makes
// and frees itself) on a new temporary directory, so that a command acting
// on a disk file keeps its state on that disk, not on the host. unmount
// unmounts it and removes the directory. It needs root.
func MountData(path string, l Layout) (dir string, unmount func() error, err error) {
	dir, err = os.MkdirTemp("", "twinroot-data-")
	if err != nil {
		return "", nil, err
	}
	opts := "loop,offset=" + strconv.FormatInt(l.Data.Start, 10) + ",sizelimit=" + strconv.FormatInt(l.Data.Size, 10)
	if out, err := exec.Command("mount", "-t", "ext4", "-o", opts, path, dir).CombinedOutput(); err != nil {
		os.Remove(dir)
		return "", nil, fmt.Errorf("mount the data partition of %s: %v: %s", path, err, strings.TrimSpace(string(out)))
	}
	return dir, func() error {
		out, err := exec.Command("umount", dir).CombinedOutput()
		if err != nil {
			return fmt.Errorf("unmount the data partition of %s: %v: %s", path, err, strings.TrimSpace(string(out)))
		}
		return os.Remove(dir)
	}, nil
}
