package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/release"
)

type buildOptions struct {
	opts release.BuildOptions
	out  cli.Output
}

func newBuildCmd() *cobra.Command {
	var o buildOptions
	c := &cobra.Command{
		Use:   "build (--rootfs DIR | --oci ARCHIVE) --trust KEY.pub --version SEMVER --serial N --out DIR",
		Short: "Build a release: slot image, chunked zstd object, chunk index and unsigned manifest",
		Long: `build turns a root filesystem (a directory, or a docker-save/OCI image
archive: the OS built as a container image) into a reproducible squashfs
slot image with the trusted public keys baked in at
/usr/lib/twinroot/trusted/, then cuts it into content-defined chunks, writes
one zstd frame per chunk and the index, and an unsigned manifest. The root
must hold /boot/vmlinuz and /boot/initrd.img. Sign with updater sign or
publish with updater publish.

` + cli.ExitCodesHelp,
		Example: `  updater build --rootfs rootfs/ --trust release.pub --version 1.4.0 --serial 42 --out build/v1.4.0
  updater build --oci os.tar --trust release.pub --trust next.pub --version 1.5.0 --serial 43 --out build/v1.5.0`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runBuild(c, o, c.OutOrStdout()) },
	}
	f := c.Flags()
	f.StringVar(&o.opts.Image.Rootfs, "rootfs", "", "root filesystem directory")
	f.StringVar(&o.opts.Image.OCI, "oci", "", "docker-save or OCI image archive holding the root filesystem")
	f.StringArrayVar(&o.opts.Image.Trust, "trust", nil, "public key the image trusts for later releases (repeatable)")
	f.StringVar(&o.opts.Image.Version, "version", "", "release version (semver, e.g. 1.4.0)")
	f.Uint64Var(&o.opts.Image.Serial, "serial", 0, "release serial: a whole number above every earlier release's")
	f.Uint64Var(&o.opts.MinSerial, "min-serial", 0, "anti-rollback floor: devices refuse releases below it afterwards")
	f.StringVar(&o.opts.Image.Compression, "compression", "xz", "squashfs compression: xz, gzip or none (GRUB cannot read zstd)")
	f.StringVar(&o.opts.Out, "out", "", "output directory")
	o.out.AddFlags(f)
	for _, r := range []string{"version", "serial", "out"} {
		c.MarkFlagRequired(r)
	}
	return c
}

func runBuild(c *cobra.Command, o buildOptions, w io.Writer) error {
	if err := o.out.Validate(); err != nil {
		return err
	}
	if (o.opts.Image.Rootfs == "") == (o.opts.Image.OCI == "") {
		return cli.UsageError{Err: fmt.Errorf("give exactly one of --rootfs or --oci")}
	}
	o.opts.Image.Version = strings.TrimPrefix(o.opts.Image.Version, "v")
	r, err := release.Build(c.Context(), o.opts)
	if err != nil {
		return err
	}
	if o.out.JSON() {
		return cli.WriteJSON(w, r)
	}
	m := r.Manifest
	fmt.Fprintf(w, "built %s (serial %d) in %s in %.1fs\n", m.Version, m.Serial, r.Dir, r.Duration.Seconds())
	fmt.Fprintf(w, "  slot.img      %d bytes, sha256 %s\n", m.Image.Size, m.Image.SHA256)
	fmt.Fprintf(w, "  slot.img.zst  %d bytes in %d chunks\n", m.Image.CompressedSize, r.Chunks)
	fmt.Fprintf(w, "  manifest.json unsigned: sign with updater sign or updater publish\n")
	return nil
}
