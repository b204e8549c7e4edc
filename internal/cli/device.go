package cli

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/partition"
)

// Device is the --disk and --running-slot pair every device-side command
// takes, so it can act on a disk image file instead of the live system.
type Device struct {
	Disk        string
	RunningSlot string
	// Cmdline is the kernel command line to read the running slot from.
	Cmdline string
	Finder  partition.Finder
}

// AddFlags registers --disk and --running-slot.
func (d *Device) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&d.Disk, "disk", "", "disk image file or device to act on (default: the disk of the running system)")
	f.StringVar(&d.RunningSlot, "running-slot", "", "slot to treat as running, a or b (default: twinroot.slot= of the kernel command line)")
	if d.Cmdline == "" {
		d.Cmdline = "/proc/cmdline"
	}
	if d.Finder.SysBlock == "" {
		d.Finder = partition.System()
	}
}

// Offline reports whether the command acts on a named disk rather than the
// live system.
func (d *Device) Offline() bool { return d.Disk != "" }

// Open opens the disk and tells the running slot.
func (d *Device) Open() (*bootstate.Disk, bootstate.Slot, error) {
	var running bootstate.Slot
	var err error
	if d.RunningSlot != "" {
		if running, err = partition.ParseSlot(d.RunningSlot); err != nil {
			return nil, "", UsageError{err}
		}
	} else if running, err = bootstate.RunningFromCmdline(d.Cmdline); err != nil {
		if d.Offline() {
			return nil, "", UsageError{fmt.Errorf("%v; with --disk, say --running-slot a|b", err)}
		}
		return nil, "", err
	}
	path := d.Disk
	if path == "" {
		disk, err := d.Finder.FindTwinroot()
		if err != nil {
			return nil, "", err
		}
		path = disk.Path
	}
	disk, err := bootstate.OpenDisk(path)
	if err != nil {
		return nil, "", err
	}
	return disk, running, nil
}
