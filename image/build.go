package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/twinroot/twinroot/internal/refusal"
)

// Where a slot image carries its identity and the keys it trusts.
const (
	TrustedDir  = "/usr/lib/twinroot/trusted"
	VersionFile = "/etc/twinroot/version"
	SerialFile  = "/etc/twinroot/serial"
)

// BootFiles are what GRUB loads from a slot: without them the slot boots
// nothing.
var BootFiles = []string{"/boot/vmlinuz", "/boot/initrd.img"}

// ErrNoKernel is returned for a root without /boot/vmlinuz or /boot/initrd.img.
var ErrNoKernel = refusal.New("root has no kernel")

// BuildOptions of a slot image.
type BuildOptions struct {
	Rootfs string // a directory holding the root, or
	OCI    string // a docker-save or OCI image archive whose filesystem is the root
	// Trust are public key files baked in at TrustedDir, under their base names.
	Trust       []string
	Version     string
	Serial      uint64
	Compression string // xz (default), gzip or none
	Out         string // the slot image file
}

// Build makes a reproducible squashfs slot image: the same root, keys,
// version and serial give the same bytes.
func Build(ctx context.Context, o BuildOptions) (Info, error) {
	if (o.Rootfs == "") == (o.OCI == "") {
		return Info{}, errors.New("give exactly one of a root directory or an OCI archive")
	}
	root := o.Rootfs
	if o.OCI != "" {
		tmp, err := os.MkdirTemp("", "twinroot-oci-")
		if err != nil {
			return Info{}, err
		}
		defer os.RemoveAll(tmp)
		root = filepath.Join(tmp, "root")
		if err := ExtractOCI(ctx, o.OCI, root); err != nil {
			return Info{}, err
		}
	}
	for _, f := range BootFiles {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			return Info{}, fmt.Errorf("%w: %s missing in %s", ErrNoKernel, f, o.Rootfs+o.OCI)
		}
	}
	tmp, err := os.MkdirTemp("", "twinroot-build-")
	if err != nil {
		return Info{}, err
	}
	defer os.RemoveAll(tmp)
	// Identity and keys are added as mksquashfs pseudo files, so the root
	// itself is never copied or changed.
	extra := map[string]string{VersionFile: o.Version + "\n", SerialFile: strconv.FormatUint(o.Serial, 10) + "\n"}
	for _, k := range o.Trust {
		b, err := os.ReadFile(k)
		if err != nil {
			return Info{}, fmt.Errorf("trusted key: %w", err)
		}
		extra[path.Join(TrustedDir, filepath.Base(k))] = string(b)
	}
	args := []string{root, o.Out, "-noappend", "-quiet", "-no-progress", "-mkfs-time", "0", "-all-time", "0"}
	switch o.Compression {
	case "", "xz":
		args = append(args, "-comp", "xz")
	case "gzip":
		args = append(args, "-comp", "gzip")
	case "none":
		args = append(args, "-noI", "-noD", "-noF", "-noX")
	default:
		return Info{}, fmt.Errorf("compression %q: want xz, gzip or none (GRUB cannot read zstd squashfs)", o.Compression)
	}
	dirs := map[string]bool{}
	var names []string
	for name := range extra {
		names = append(names, name)
		for d := path.Dir(name); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	sort.Strings(names)
	var dirList []string
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList)
	for _, d := range dirList {
		if fi, err := os.Lstat(filepath.Join(root, d)); err == nil && !fi.IsDir() {
			return Info{}, fmt.Errorf("%s in the root is not a directory", d)
		} else if err != nil {
			args = append(args, "-p", d+" d 755 0 0")
		}
	}
	for i, name := range names {
		src := filepath.Join(tmp, strconv.Itoa(i))
		if err := os.WriteFile(src, []byte(extra[name]), 0o644); err != nil {
			return Info{}, err
		}
		if cur, err := os.ReadFile(filepath.Join(root, name)); err == nil {
			if string(cur) != extra[name] {
				return Info{}, fmt.Errorf("the root already has %s with other content; remove it from the root", name)
			}
			continue
		}
		args = append(args, "-p", name+" f 644 0 0 cat "+src)
	}
	cmd := exec.CommandContext(ctx, "mksquashfs", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return Info{}, fmt.Errorf("mksquashfs: %v: %s", err, strings.TrimSpace(string(out)))
	}
	f, info, err := Open(o.Out)
	if err != nil {
		return Info{}, err
	}
	f.Close()
	return info, nil
}

// ExtractOCI writes the flattened filesystem of the image in a docker-save
// or OCI archive into dir, as root, keeping owners and modes.
func ExtractOCI(ctx context.Context, archive, dir string) error {
	img, cleanup, err := openOCI(archive)
	if err != nil {
		return fmt.Errorf("read OCI archive %s: %w", archive, err)
	}
	defer cleanup()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	// GNU tar applies owners, modes, links and device nodes as root would.
	cmd := exec.CommandContext(ctx, "tar", "-C", dir, "-xpf", "-", "--numeric-owner")
	cmd.Stdin = rc
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("unpack image filesystem: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func openOCI(archive string) (v1.Image, func(), error) {
	imgs, cleanup, err := OpenArchive(archive)
	if err != nil {
		return nil, nil, err
	}
	return imgs[0].Image, cleanup, nil
}

// Archived is one image of a docker-save or OCI archive.
type Archived struct {
	Image v1.Image
	Refs  []string // the names it was saved under (RepoTags, or OCI ref.name annotations)
}

// OpenArchive reads the images of a docker-save or OCI image archive. An
// OCI archive is unpacked into a temporary directory that cleanup removes.
func OpenArchive(archive string) ([]Archived, func(), error) {
	isLayout, err := tarHas(archive, "oci-layout")
	if err != nil {
		return nil, nil, err
	}
	if !isLayout {
		opener := func() (io.ReadCloser, error) { return os.Open(archive) }
		m, err := tarball.LoadManifest(opener)
		if err != nil {
			return nil, nil, err
		}
		var imgs []Archived
		for i, d := range m {
			var tag *name.Tag
			if len(d.RepoTags) > 0 {
				t, err := name.NewTag(d.RepoTags[0])
				if err != nil {
					return nil, nil, fmt.Errorf("image %d: tag %q: %w", i, d.RepoTags[0], err)
				}
				tag = &t
			} else if len(m) > 1 {
				continue // an untagged image beside others cannot be told apart
			}
			img, err := tarball.Image(opener, tag)
			if err != nil {
				return nil, nil, err
			}
			imgs = append(imgs, Archived{Image: img, Refs: d.RepoTags})
		}
		if len(imgs) == 0 {
			return nil, nil, fmt.Errorf("no image in %s", archive)
		}
		return imgs, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "twinroot-oci-layout-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	if out, err := exec.Command("tar", "-C", tmp, "-xf", archive).CombinedOutput(); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("untar: %v: %s", err, out)
	}
	idx, err := layout.ImageIndexFromPath(tmp)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) == 0 {
		cleanup()
		return nil, nil, fmt.Errorf("OCI layout has no image manifest: %v", err)
	}
	var imgs []Archived
	for _, d := range m.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		var refs []string
		for _, k := range []string{"io.containerd.image.name", "org.opencontainers.image.ref.name"} {
			if r := d.Annotations[k]; r != "" {
				refs = append(refs, r)
			}
		}
		imgs = append(imgs, Archived{Image: img, Refs: refs})
	}
	return imgs, cleanup, nil
}

func tarHas(archive, name string) (bool, error) {
	f, err := os.Open(archive)
	if err != nil {
		return false, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("%s is not a tar archive: %w", archive, err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			return true, nil
		}
	}
}
