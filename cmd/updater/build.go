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

--containers DIR bakes services into the image: DIR holds compose.yaml and
the services' images as archives (podman save; a service with build: is
built offline with the build host's podman). Each service becomes a Podman
Quadlet unit, its image goes into a read-only image store in the slot, and
the root's own Quadlet checks the units. Keys the image cannot honour are
refused with the service and key named; nothing is written then. The
root needs podman with Quadlet and the updater (--updater-path).

` + cli.ExitCodesHelp,
		Example: `  updater build --rootfs rootfs/ --trust release.pub --version 1.4.0 --serial 42 --out build/v1.4.0
  updater build --oci os.tar --trust release.pub --trust next.pub --version 1.5.0 --serial 43 --out build/v1.5.0
  updater build --rootfs rootfs/ --containers services/ --trust release.pub --version 1.6.0 --serial 44 --out build/v1.6.0`,
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
	f.StringVar(&o.opts.Containers, "containers", "", "bundle directory: compose.yaml and image archives of the services the image runs")
	f.StringArrayVar(&o.opts.Podman.Args, "podman-arg", nil, "global argument for the build host's podman, e.g. --runtime=runc (repeatable)")
	f.StringVar(&o.opts.Updater, "updater-path", "/usr/bin/updater", "the updater's path inside the root (renders the services' env files)")
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
	for _, c := range m.Containers {
		fmt.Fprintf(w, "  service       %s, image %s\n", c.Name, c.Digest)
	}
	fmt.Fprintf(w, "  manifest.json unsigned: sign with updater sign or updater publish\n")
	return nil
}
