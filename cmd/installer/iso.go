package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/iso"
)

type isoOptions struct {
	opts     iso.Options
	yes      bool
	wipeData bool
	disk     string
	out      cli.Output
}

func newISOCmd() *cobra.Command {
	var o isoOptions
	c := &cobra.Command{
		Use:   "iso --image DIR --config device.yaml --out installer.iso",
		Short: "Build the installer ISO: boots by BIOS and UEFI from a CD or a USB stick and installs the bundled release",
		Long: `iso builds a hybrid ISO image (El Torito for CDs, MBR and GPT for a USB
stick; BIOS and UEFI each way) holding a Debian kernel, an initramfs whose
init is this installer, the release in DIR (a build output directory of
updater build, signed with updater sign) and the device config.

It refuses an unsigned manifest, one not signed by a key the image itself
trusts, and an image that does not match its manifest. The same inputs give
the same bytes.

Booted, the installer shows what it will do, picks the first non-removable
disk that is not the medium it booted from (or twinroot.disk=), refuses a
disk holding twinroot data (unless twinroot.wipe-data=1), asks for
confirmation on the console (unless twinroot.yes=1), installs and powers
off. --yes, --wipe-data and --disk put these parameters on the ISO's kernel
command line; GRUB's menu entry can be edited at boot to add them too.

` + cli.ExitCodesHelp,
		Example: `  installer iso --image build/minimal-v1 --config device.yaml --out build/installer.iso
  installer iso --image out/1.0.0 --config device.yaml --yes --out unattended.iso`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runISO(c, o, c.OutOrStdout()) },
	}
	f := c.Flags()
	f.StringVar(&o.opts.Release, "image", "", "build output directory of updater build, signed (required)")
	f.StringVar(&o.opts.Config, "config", "", "device.yaml to seed the data partition with")
	f.StringVar(&o.opts.Out, "out", "installer.iso", "ISO file to write")
	f.StringVar(&o.opts.KernelDir, "kernel-dir", "", "Debian kernel: vmlinuz, version, lib/modules (default: next to the binary, /usr/lib/twinroot/kernel, or build/kernel)")
	f.StringVar(&o.opts.GrubDir, "grub-dir", "", "directory with boot.img, core.img, BOOTX64.EFI (default: next to the binary, /usr/lib/twinroot/grub, or build/grub)")
	f.StringVar(&o.opts.Installer, "installer", "", "static installer binary to run from the ISO (default: this one)")
	f.StringVar(&o.opts.KernelArgs, "kernel-args", "", "extra kernel command line arguments for the installer")
	f.BoolVar(&o.yes, "yes", false, "install without asking (twinroot.yes=1)")
	f.BoolVar(&o.wipeData, "wipe-data", false, "allow erasing a disk that holds twinroot data (twinroot.wipe-data=1)")
	f.StringVar(&o.disk, "disk", "", "target disk on the installed machine, e.g. /dev/sda (twinroot.disk=)")
	o.out.AddFlags(f)
	c.MarkFlagRequired("image")
	return c
}

func runISO(c *cobra.Command, o isoOptions, w io.Writer) error {
	if err := o.out.Validate(); err != nil {
		return err
	}
	var args []string
	if o.opts.KernelArgs != "" {
		args = append(args, o.opts.KernelArgs)
	}
	if o.yes {
		args = append(args, iso.ArgYes+"=1")
	}
	if o.wipeData {
		args = append(args, iso.ArgWipeData+"=1")
	}
	if o.disk != "" {
		args = append(args, iso.ArgDisk+"="+o.disk)
	}
	o.opts.KernelArgs = strings.Join(args, " ")
	if o.opts.GrubDir == "" {
		o.opts.GrubDir = findGrubDir()
	}
	if o.opts.KernelDir == "" {
		o.opts.KernelDir = findDir("kernel", "vmlinuz", "build/kernel")
	}
	if o.opts.Installer == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.opts.Installer = exe
	}
	r, err := iso.Build(c.Context(), o.opts)
	if err != nil {
		return err
	}
	if o.out.JSON() {
		return cli.WriteJSON(w, r)
	}
	fmt.Fprintf(w, "built %s in %.1fs: %d bytes (%.1f MiB), release %s (serial %d), volume %s\n",
		r.Out, r.Duration.Seconds(), r.Size, float64(r.Size)/(1<<20), r.Version, r.Serial, r.VolumeID)
	return nil
}
