package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/install"
	"github.com/twinroot/twinroot/internal/partition"
)

type installOptions struct {
	opts     install.Options
	slotSize string
	yes      bool
	out      cli.Output
	verbose  bool
}

func newInstallCmd() *cobra.Command {
	var o installOptions
	c := &cobra.Command{
		Use:   "install --disk auto|DEVICE|FILE --image DIR|SLOTIMAGE",
		Short: "Partition a disk, write the first version to slot A, install GRUB (BIOS and UEFI)",
		Long: `install checks everything first and writes nothing when a check fails: the
image must be a squashfs that fits the slot, the disk large enough, not the
medium the system booted from, without mounted filesystems, and without
twinroot data unless --wipe-data is given. A block device needs --yes or a
typed confirmation. --disk auto picks the first non-removable disk that
passes these checks.

` + cli.ExitCodesHelp,
		Example: `  truncate -s 8G disk.img
  installer install --disk disk.img --image build/minimal-v1.img --slot-size 256M
  installer install --disk /dev/sdb --image build/v1 --config device.yaml --yes`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runInstall(c, o, c.InOrStdin(), c.OutOrStdout()) },
	}
	f := c.Flags()
	f.StringVar(&o.opts.Disk, "disk", "", "target: auto, a block device, or a disk image file (required)")
	f.StringVar(&o.opts.Image, "image", "", "slot image (squashfs) or build output directory (required)")
	f.StringVar(&o.opts.Config, "config", "", "device.yaml to seed the data partition with")
	f.StringVar(&o.opts.GrubDir, "grub-dir", "", "directory with boot.img, core.img, BOOTX64.EFI (default: next to the binary, /usr/lib/twinroot/grub, or build/grub)")
	f.StringVar(&o.slotSize, "slot-size", "2G", "size of each slot (K, M, G suffixes)")
	f.StringVar(&o.opts.KernelArgs, "kernel-args", "", "extra kernel command line arguments for both slots")
	f.BoolVar(&o.yes, "yes", false, "do not ask for confirmation")
	f.BoolVar(&o.opts.WipeData, "wipe-data", false, "allow erasing a disk that holds twinroot data")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "debug logging")
	o.out.AddFlags(f)
	c.MarkFlagRequired("disk")
	c.MarkFlagRequired("image")
	return c
}

func runInstall(c *cobra.Command, o installOptions, in io.Reader, w io.Writer) error {
	if err := o.out.Validate(); err != nil {
		return err
	}
	size, err := config.ParseSize(strings.ToUpper(strings.TrimSpace(o.slotSize)))
	if err != nil {
		return cli.UsageError{Err: fmt.Errorf("--slot-size %q: want a size like 512M or 2G", o.slotSize)}
	}
	o.opts.SlotSize = size
	if o.opts.GrubDir == "" {
		o.opts.GrubDir = findGrubDir()
	}
	if o.opts.Disk == "auto" {
		d, err := partition.System().Choose(o.opts.WipeData)
		if err != nil {
			return err
		}
		o.opts.Disk = d.Path
	}
	o.opts.Log = cli.Logger(os.Stderr, o.verbose)
	o.opts.Progress = cli.Progress(os.Stderr, "writing slot A")
	o.opts.Confirm = func(p install.Plan) error {
		fmt.Fprintf(os.Stderr, "installing version %q (%d MiB) onto %s (%d MiB): slots of %d MiB, data %d MiB\n",
			p.Image.Version, p.Image.Size>>20, p.Disk, p.DiskSize>>20, p.Layout.A.Size>>20, p.Layout.Data.Size>>20)
		if p.Wipes {
			fmt.Fprintf(os.Stderr, "this ERASES the twinroot data on %s\n", p.Disk)
		}
		if o.yes || !isDevice(p.Disk) {
			return nil
		}
		if !cli.IsTerminal(os.Stdin) {
			return fmt.Errorf("%w: %s is a block device; pass --yes", install.ErrNotConfirmed, p.Disk)
		}
		fmt.Fprintf(os.Stderr, "type yes to erase %s: ", p.Disk)
		line, _ := bufio.NewReader(in).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			return install.ErrNotConfirmed
		}
		return nil
	}
	r, err := install.Install(c.Context(), o.opts)
	if errors.Is(err, partition.ErrHoldsData) {
		return fmt.Errorf("%w; use --wipe-data to erase it", err)
	}
	if err != nil {
		return err
	}
	if o.out.JSON() {
		return cli.WriteJSON(w, r)
	}
	fmt.Fprintf(w, "installed version %q on %s in %.1fs: slot A sha256 %s\n", r.Image.Version, r.Disk, r.Duration.Seconds(), r.SHA256)
	return nil
}

func isDevice(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&os.ModeDevice != 0
}

// findGrubDir looks where a package or a checkout keeps the GRUB images.
func findGrubDir() string { return findDir("grub", "core.img", "build/grub") }

// findDir looks for name (holding file) next to the binary, in
// /usr/lib/twinroot, then falls back to a checkout's fallback.
func findDir(name, file, fallback string) string {
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Join(filepath.Dir(exe), name))
	}
	dirs = append(dirs, filepath.Join("/usr/lib/twinroot", name), fallback)
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, file)); err == nil {
			return d
		}
	}
	return fallback
}
