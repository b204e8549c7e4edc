package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twinroot/twinroot/image/examples/minimal"
	"github.com/twinroot/twinroot/internal/iso"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/release"
)

// ISOOptions of an installer ISO the lab builds.
type ISOOptions struct {
	Version string // default 1.0.0
	Serial  uint64 // default 1
	// Config is the content of the device.yaml on the ISO; "" for none.
	Config string
	// KernelArgs go on the installer's kernel command line, e.g.
	// "twinroot.yes=1".
	KernelArgs string
	// Release is a release build directory to carry instead of the
	// minimal system at Version (a Debian release, say); it is signed on
	// a copy.
	Release string
}

// SignedRelease returns a copy of the release build of version (see
// Release) whose manifest.json is signed for Channel by the lab's key, as
// `updater sign` leaves it for the installer ISO. The shared build stays
// bare for Publish.
func (l *Lab) SignedRelease(ctx context.Context, version string, serial uint64, variant minimal.Variant) (string, error) {
	src, err := l.Release(ctx, version, serial, variant)
	if err != nil {
		return "", err
	}
	return l.signedCopy(ctx, src, version)
}

// signedCopy links the release build src into a new directory and signs
// its manifest there.
func (l *Lab) signedCopy(ctx context.Context, src, version string) (string, error) {
	k, _, err := l.SigningKey()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(l.Dir, "signed-"+version+"-")
	if err != nil {
		return "", err
	}
	for _, f := range []string{release.SlotFile, release.IndexFile, release.ManifestFile} {
		if err := copyOrLink(filepath.Join(src, f), filepath.Join(dir, f)); err != nil {
			return "", fmt.Errorf("copy release %s: %w", version, err)
		}
	}
	if _, _, err := release.SignDir(ctx, dir, Channel, time.Now(), ReleaseTTL, []*keys.PrivateKey{k}...); err != nil {
		return "", err
	}
	return dir, nil
}

// copyOrLink hard-links src to dst (the slot image is large and never
// written in place), copying when the link fails.
func copyOrLink(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// Installer returns the installer binary built for the ISO's initramfs
// (static), building it the first time.
func (l *Lab) Installer(ctx context.Context) (string, error) {
	l.installerOnce.Do(func() {
		p := filepath.Join(l.Dir, "installer")
		if l.installerErr = buildStatic(ctx, "installer", p); l.installerErr != nil {
			return
		}
		l.installerBin = p
	})
	return l.installerBin, l.installerErr
}

// BuildISO builds an installer ISO at out from a signed release of the
// minimal system (variant ok), as `installer iso` does.
func (l *Lab) BuildISO(ctx context.Context, out string, o ISOOptions) (iso.Result, error) {
	if o.Version == "" {
		o.Version = "1.0.0"
	}
	if o.Serial == 0 {
		o.Serial = 1
	}
	var rel string
	var err error
	if o.Release != "" {
		rel, err = l.signedCopy(ctx, o.Release, o.Version)
	} else {
		rel, err = l.SignedRelease(ctx, o.Version, o.Serial, minimal.OK)
	}
	if err != nil {
		return iso.Result{}, err
	}
	inst, err := l.Installer(ctx)
	if err != nil {
		return iso.Result{}, err
	}
	var cfg string
	if o.Config != "" {
		cfg = filepath.Join(filepath.Dir(out), "device-"+strconv.FormatUint(o.Serial, 10)+".yaml")
		if err := os.WriteFile(cfg, []byte(o.Config), 0o600); err != nil {
			return iso.Result{}, err
		}
	}
	return iso.Build(ctx, iso.Options{Release: rel, Config: cfg, Out: out, KernelDir: l.KernelDir,
		GrubDir: l.GrubDir, Installer: inst, KernelArgs: o.KernelArgs})
}

// UseKey makes the lab sign with the key pair named base (base.key and
// base.pub, as `updater keygen --out base` writes them) instead of one it
// generates, so its releases follow an image built elsewhere (make image).
// Call it before the first release is built or signed.
func (l *Lab) UseKey(base string) error {
	private, public := keys.Paths(base)
	k, err := keys.LoadPrivate(private)
	if err != nil {
		return err
	}
	pub, err := keys.LoadPublic(public)
	if err != nil {
		return err
	}
	if pub.ID != k.ID {
		return fmt.Errorf("%s and %s are not one key pair", private, public)
	}
	used := false
	l.keyOnce.Do(func() { l.key, l.keyPub, used = k, public, true })
	if !used {
		return fmt.Errorf("use key %s: the lab already has a signing key", private)
	}
	return nil
}
