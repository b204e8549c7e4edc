package iso

import (
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/twinroot/twinroot/internal/initramfs"
)

// SetupPID1 prepares the initramfs for the installer as init: the kernel
// file systems, PATH, and the kernel modules the initramfs carries (its
// modules.dep lists exactly those). The errors are worth showing, not
// fatal: a module for hardware the machine lacks fails to load.
func SetupPID1() []error {
	errs := initramfs.MountKernelFilesystems()
	os.Setenv("PATH", "/sbin:/bin")
	os.Setenv("HOME", "/root")
	return append(errs, initramfs.LoadModules()...)
}

// Consoles opens every console the kernel writes to (console= on the
// command line: the screen and the serial port), so the installer is seen
// and answered on whichever one the user watches. Without that list it
// falls back to /dev/console.
func Consoles() (out io.Writer, ins []io.Reader) {
	var ws []io.Writer
	b, _ := os.ReadFile("/sys/class/tty/console/active")
	for _, name := range strings.Fields(string(b)) {
		f, err := os.OpenFile("/dev/"+name, os.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil {
			continue
		}
		ws = append(ws, f)
		ins = append(ins, f)
	}
	if len(ws) == 0 {
		return os.Stdout, []io.Reader{os.Stdin}
	}
	return consoles(ws), ins
}

// consoles writes to every console; one that fails (a screen that is not
// there) does not keep the line from the others.
type consoles []io.Writer

func (c consoles) Write(p []byte) (int, error) {
	for _, w := range c {
		w.Write(p)
	}
	return len(p), nil
}

// MountISO mounts the ISO 9660 file system on dev read-only at dir.
func MountISO(dev, dir string) error {
	return unix.Mount(dev, dir, "iso9660", unix.MS_RDONLY, "")
}

// PowerOff syncs and powers the machine off; it returns only on failure.
func PowerOff(mounted ...string) error {
	unix.Sync()
	for _, m := range mounted {
		unix.Unmount(m, 0)
	}
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
