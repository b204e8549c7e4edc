package lab

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twinroot/twinroot/image"
	"github.com/twinroot/twinroot/image/examples/minimal"
	"github.com/twinroot/twinroot/internal/install"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/source"
)

// Channel is the release channel the lab publishes to.
const Channel = "stable"

// ReleaseTTL is how long a release the lab publishes stays valid.
const ReleaseTTL = 30 * 24 * time.Hour

// releaseBuild is one release build, shared by every caller asking for it.
type releaseBuild struct {
	done chan struct{}
	dir  string
	err  error
}

// SigningKey returns the lab's release key and the file of its public
// half (baked into every release as a trusted key), generating them the
// first time.
func (l *Lab) SigningKey() (*keys.PrivateKey, string, error) {
	l.keyOnce.Do(func() {
		k, err := keys.Generate(rand.Reader)
		if err != nil {
			l.keyErr = fmt.Errorf("generate the lab signing key: %w", err)
			return
		}
		// A fresh name per Lab: Save never overwrites.
		base, err := os.MkdirTemp(l.Dir, "key-")
		if err != nil {
			l.keyErr = fmt.Errorf("lab signing key: %w", err)
			return
		}
		_, pub, err := keys.Save(filepath.Join(base, "lab"), k)
		if err != nil {
			l.keyErr = fmt.Errorf("save the lab signing key: %w", err)
			return
		}
		l.key, l.keyPub = k, pub
	})
	return l.key, l.keyPub, l.keyErr
}

// initBinary builds the minimal system's init once per Lab, so releases do
// not rebuild it each time.
func (l *Lab) initBinary(ctx context.Context) (string, error) {
	l.initOnce.Do(func() {
		p := filepath.Join(l.Dir, "init")
		if err := minimal.BuildInit(ctx, p); err != nil {
			l.initErr = err
			return
		}
		l.initBin = p
	})
	return l.initBin, l.initErr
}

// Release returns the build output directory (slot.img, slot.img.zst,
// chunks.idx, bare manifest.json; see package release) of the minimal
// system at version and serial with the given variant, its root carrying
// the lab's public key as trusted; built the first time, then cached.
// Several releases build at once from different goroutines.
func (l *Lab) Release(ctx context.Context, version string, serial uint64, variant minimal.Variant) (string, error) {
	key := version + "-" + strconv.FormatUint(serial, 10) + "-" + string(variant)
	return l.cachedRelease(ctx, key, func() (string, error) { return l.buildRelease(ctx, key, version, serial, variant) })
}

// cachedRelease runs build once per key, however many callers ask at once.
func (l *Lab) cachedRelease(ctx context.Context, key string, build func() (string, error)) (string, error) {
	l.mu.Lock()
	if l.releases == nil {
		l.releases = map[string]*releaseBuild{}
	}
	b, ok := l.releases[key]
	if !ok {
		b = &releaseBuild{done: make(chan struct{})}
		l.releases[key] = b
	}
	l.mu.Unlock()
	if ok {
		select {
		case <-b.done:
			return b.dir, b.err
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	b.dir, b.err = build()
	if b.err != nil {
		b.err = fmt.Errorf("build release %s: %w", key, b.err)
		// A later call may try again (a canceled context, for one).
		l.mu.Lock()
		delete(l.releases, key)
		l.mu.Unlock()
	}
	close(b.done)
	return b.dir, b.err
}

func (l *Lab) buildRelease(ctx context.Context, key, version string, serial uint64, variant minimal.Variant) (string, error) {
	_, pub, err := l.SigningKey()
	if err != nil {
		return "", err
	}
	initBin, err := l.initBinary(ctx)
	if err != nil {
		return "", err
	}
	root, err := os.MkdirTemp(l.Dir, "root-"+key+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(root)
	opts := minimal.Options{KernelDir: l.KernelDir, Updater: l.Updater, Version: version, Variant: variant, Init: initBin}
	if err := minimal.BuildRoot(ctx, opts, root); err != nil {
		return "", err
	}
	dir := filepath.Join(l.Dir, "release-"+key)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	_, err = release.Build(ctx, release.BuildOptions{
		Image: image.BuildOptions{Rootfs: root, Trust: []string{pub}, Version: version, Serial: serial},
		Out:   dir,
	})
	if err != nil {
		return "", err
	}
	return dir, nil
}

// Publish signs the release in dir with the lab's key and uploads it to
// the store on Channel, as `updater publish` does: objects first,
// latest.json last.
func (l *Lab) Publish(ctx context.Context, st source.Store, dir string) (release.PublishResult, error) {
	k, _, err := l.SigningKey()
	if err != nil {
		return release.PublishResult{}, err
	}
	r, err := release.Publish(ctx, st, release.PublishOptions{Dir: dir, Channel: Channel, Signers: []*keys.PrivateKey{k}, TTL: ReleaseTTL})
	if err != nil {
		return r, fmt.Errorf("publish %s: %w", filepath.Base(dir), err)
	}
	return r, nil
}

// InstallRelease makes a sparse disk file at disk and installs the release
// in dir on it, as `installer install` does, seeding the data partition
// with the device config file deviceYAML ("" for none).
func (l *Lab) InstallRelease(ctx context.Context, disk, dir, deviceYAML string) error {
	if err := EmptyDisk(disk); err != nil {
		return err
	}
	_, err := install.Install(ctx, install.Options{Disk: disk, Image: installable(dir), GrubDir: l.GrubDir, SlotSize: SlotSize, Config: deviceYAML})
	if err != nil {
		return fmt.Errorf("install %s on %s: %w", filepath.Base(dir), disk, err)
	}
	return nil
}
