package containers

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/twinroot/twinroot/image"
)

// Podman runs the build host's podman against a store of its own, never
// the host's.
type Podman struct {
	Bin string // default "podman"
	// Args go before every command; the build host's podman may need a
	// runtime or ulimits (--runtime runc on hosts with cgroups v1).
	Args []string
}

func (p Podman) run(ctx context.Context, root, runroot string, args ...string) ([]byte, error) {
	bin := cmp.Or(p.Bin, "podman")
	full := append([]string{"--root", root, "--runroot", runroot, "--storage-driver", "overlay",
		"--events-backend", "none", "--cgroup-manager", "cgroupfs"}, p.Args...)
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("podman %s: %v: %s", args[0], err, oneLine(lastLines(stderr.String(), 3)))
	}
	return out, nil
}

// archive is an image found in a bundle directory.
type archive struct {
	path   string
	refs   []string
	id     string // sha256:<config digest>
	layers []Layer
}

// Prepared is a bundle whose every image has been found (or built) and
// identified, ready to be written into a root.
type Prepared struct {
	*Bundle
	archives map[string]archive // by service
	tmp      string
}

// Close removes the images built for the bundle.
func (p *Prepared) Close() error { return os.RemoveAll(p.tmp) }

// Prepare builds the services that have build: (offline, with the build
// host's podman) and finds every service's image in the archives of the
// bundle directory. It writes nothing outside a temporary directory, so a
// refusal here leaves every output untouched.
func (b *Bundle) Prepare(ctx context.Context, pm Podman) (*Prepared, error) {
	tmp, err := os.MkdirTemp("", "twinroot-bundle-")
	if err != nil {
		return nil, err
	}
	p := &Prepared{Bundle: b, archives: map[string]archive{}, tmp: tmp}
	fail := func(err error) (*Prepared, error) { p.Close(); return nil, err }
	var found []archive
	paths, _ := filepath.Glob(filepath.Join(b.Dir, "*.tar"))
	more, _ := filepath.Glob(filepath.Join(b.Dir, "images", "*.tar"))
	for _, path := range append(paths, more...) {
		as, err := readArchive(path)
		if err != nil {
			return fail(fmt.Errorf("%w: image archive %s: %v", ErrRefused, filepath.Base(path), err))
		}
		found = append(found, as...)
	}
	for _, s := range b.Services {
		if s.Build == nil {
			continue
		}
		out := filepath.Join(tmp, "build-"+s.Name+".tar")
		if err := pm.build(ctx, s, tmp, out); err != nil {
			return fail(fmt.Errorf("%w: service %s: build: %v", ErrRefused, s.Name, err))
		}
		as, err := readArchive(out)
		if err != nil {
			return fail(err)
		}
		p.archives[s.Name] = as[0]
	}
	for i, s := range b.Services {
		a, ok := p.archives[s.Name]
		if !ok {
			if a, ok = match(s.Image, found); !ok {
				return fail(fmt.Errorf("%w: %s: service %s: image %s is in no archive of %s (%s)",
					ErrRefused, ComposeFile, s.Name, s.Image, b.Dir, describe(found)))
			}
			p.archives[s.Name] = a
		}
		b.Services[i].ImageID, b.Services[i].Layers = a.id, a.layers
	}
	return p, nil
}

func (pm Podman) build(ctx context.Context, s Service, tmp, out string) error {
	store, run := filepath.Join(tmp, "build-store"), filepath.Join(tmp, "build-run")
	tag := "localhost/twinroot-build/" + s.Name + ":latest"
	// Offline and reproducible: nothing is pulled, no network in RUN
	// steps, and times are zero so the same inputs give the same image.
	if _, err := pm.run(ctx, store, run, "build", "--pull=never", "--network=none", "--timestamp", "0",
		"--file", filepath.Join(s.Build.Context, s.Build.Dockerfile), "--tag", tag, s.Build.Context); err != nil {
		return err
	}
	_, err := pm.run(ctx, store, run, "save", "--format", "docker-archive", "--output", out, tag)
	return err
}

func readArchive(path string) ([]archive, error) {
	imgs, cleanup, err := image.OpenArchive(path)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var as []archive
	for _, img := range imgs {
		id, err := img.Image.ConfigName()
		if err != nil {
			return nil, err
		}
		a := archive{path: path, refs: img.Refs, id: id.String()}
		ls, err := img.Image.Layers()
		if err != nil {
			return nil, err
		}
		for _, l := range ls {
			d, err := l.DiffID()
			if err != nil {
				return nil, err
			}
			n, err := l.Size()
			if err != nil {
				return nil, err
			}
			a.layers = append(a.layers, Layer{DiffID: d.String(), Gzipped: n})
		}
		as = append(as, a)
	}
	return as, nil
}

// match finds ref among the archives' names; "web:2" and
// "docker.io/library/web:2" are the same name, as the compose file and
// the tool that saved the archive may spell it either way.
func match(ref string, found []archive) (archive, bool) {
	want := normalize(ref)
	for _, a := range found {
		for _, r := range a.refs {
			if r == ref || normalize(r) == want {
				return a, true
			}
		}
	}
	return archive{}, false
}

func normalize(ref string) string {
	if r, err := name.ParseReference(ref); err == nil {
		return r.Name()
	}
	return ref
}

func describe(found []archive) string {
	if len(found) == 0 {
		return "it holds no *.tar image archives; save them with podman save -o NAME.tar IMAGE"
	}
	var d []string
	for _, a := range found {
		d = append(d, filepath.Base(a.path)+": "+strings.Join(a.refs, ", "))
	}
	return "found " + strings.Join(d, "; ")
}

// Bake writes the bundle into root: the images into the read-only image
// store at StoreDir, the Quadlet units at UnitDir, the env templates and
// bundle.json at BundleDir. updater is the updater's path inside the root,
// which renders env files before each start. It then has the root's own
// Quadlet generator check the units (quadlet -dryrun, run with chroot), so
// a unit the image's podman would not accept fails the build.
func (p *Prepared) Bake(ctx context.Context, pm Podman, root, updater string) error {
	quadlet := filepath.Join(root, QuadletBin)
	if _, err := os.Stat(quadlet); err != nil {
		return fmt.Errorf("%w: the root has no %s: bundled containers need podman 4.4 or later in the image", ErrRefused, QuadletBin)
	}
	if _, err := os.Stat(filepath.Join(root, updater)); err != nil {
		return fmt.Errorf("%w: the root has no %s, which renders the services' env files", ErrRefused, updater)
	}
	store := filepath.Join(root, StoreDir)
	if _, err := os.Stat(store); err == nil {
		return fmt.Errorf("%w: the root already has %s; remove it from the root", ErrRefused, StoreDir)
	}
	run := filepath.Join(p.tmp, "run")
	loaded := map[string]bool{}
	for _, s := range p.Services {
		a := p.archives[s.Name]
		if loaded[a.path] {
			continue
		}
		loaded[a.path] = true
		if _, err := pm.run(ctx, store, run, "load", "--quiet", "--input", a.path); err != nil {
			return fmt.Errorf("service %s: %w", s.Name, err)
		}
	}
	for _, s := range p.Services {
		out, err := pm.run(ctx, store, run, "image", "inspect", "--format", "{{.Id}}", strings.TrimPrefix(s.ImageID, "sha256:"))
		if err != nil {
			return fmt.Errorf("service %s: image %s is not in the store after loading: %w", s.Name, s.ImageID, err)
		}
		if got := "sha256:" + strings.TrimSpace(string(out)); got != s.ImageID {
			return fmt.Errorf("service %s: podman loaded image %s, want %s", s.Name, got, s.ImageID)
		}
	}
	if err := sealStore(store); err != nil {
		return err
	}
	units, err := p.Units(updater)
	if err != nil {
		return err
	}
	files := map[string][]byte{}
	for n, u := range units {
		files[filepath.Join(UnitDir, n)] = u
	}
	for _, s := range p.Services {
		if len(s.Env) > 0 {
			files[filepath.Join(BundleDir, "env", s.Name+".env")] = Template(s.Env)
		}
	}
	bj, err := json.MarshalIndent(p.Bundle, "", "  ")
	if err != nil {
		return err
	}
	files[filepath.Join(BundleDir, BundleFile)] = append(bj, '\n')
	for _, n := range slices.Sorted(maps.Keys(files)) {
		if err := writeNew(filepath.Join(root, n), files[n]); err != nil {
			return err
		}
	}
	return CheckQuadlet(ctx, root)
}

// sealStore makes the store fit to be read from a read-only file system:
// podman's own database of the build host goes, and the lock files podman
// opens even to read are there (containers/storage cannot create them on
// a read-only store). It also takes out what podman made up while it
// loaded, so that the same images give the same bytes.
func sealStore(store string) error {
	if err := os.RemoveAll(filepath.Join(store, "libpod")); err != nil {
		return err
	}
	if err := normalizeStore(store); err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	// The lock files are there, and empty: podman writes a random token
	// of its last write into them, which a read-only store never changes.
	for _, l := range []string{"storage.lock", "overlay-images/images.lock", "overlay-layers/layers.lock",
		"overlay-containers/containers.lock"} {
		path := filepath.Join(store, l)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// normalizeStore replaces the two things containers/storage makes up when
// it stores a layer, so that one set of images gives one store byte for
// byte (a reproducible slot image, and no chunk changed for nothing in a
// delta): the time it was stored (layers.json "created", now the epoch)
// and the random short name of its overlay directory (overlay/l/NAME,
// its link file and the lower files naming it), now derived from the
// layer ID.
func normalizeStore(store string) error {
	layersFile := filepath.Join(store, "overlay-layers", "layers.json")
	b, err := os.ReadFile(layersFile)
	if err != nil {
		return err
	}
	var layers []map[string]any
	if err := json.Unmarshal(b, &layers); err != nil {
		return fmt.Errorf("%s: %w", layersFile, err)
	}
	rename := map[string]string{} // old short name → new
	for _, l := range layers {
		l["created"] = "1970-01-01T00:00:00Z"
		id, _ := l["id"].(string)
		linkFile := filepath.Join(store, "overlay", id, "link")
		old, err := os.ReadFile(linkFile)
		if err != nil {
			return err
		}
		sum := sha256.Sum256([]byte(id))
		short := base32.StdEncoding.EncodeToString(sum[:])[:26]
		rename[string(old)] = short
		if err := os.Rename(filepath.Join(store, "overlay", "l", string(old)), filepath.Join(store, "overlay", "l", short)); err != nil {
			return err
		}
		if err := os.WriteFile(linkFile, []byte(short), 0o644); err != nil {
			return err
		}
	}
	for _, l := range layers {
		lowerFile := filepath.Join(store, "overlay", l["id"].(string), "lower")
		lower, err := os.ReadFile(lowerFile)
		if errors.Is(err, os.ErrNotExist) {
			continue // a base layer
		} else if err != nil {
			return err
		}
		parts := strings.Split(string(lower), ":")
		for i, p := range parts {
			if n, ok := rename[strings.TrimPrefix(p, "l/")]; ok {
				parts[i] = "l/" + n
			}
		}
		if err := os.WriteFile(lowerFile, []byte(strings.Join(parts, ":")), 0o644); err != nil {
			return err
		}
	}
	out, err := json.Marshal(layers)
	if err != nil {
		return err
	}
	return os.WriteFile(layersFile, out, 0o600)
}

// writeNew writes a file that must not exist in the root yet: the root may
// be a hard-link copy whose files are shared with the caller's tree.
func writeNew(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if os.IsExist(err) {
			return fmt.Errorf("%w: the root already has %s; remove it from the root", ErrRefused, path)
		}
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// CheckQuadlet runs the root's Quadlet generator over the units in its
// dry-run mode. Quadlet (podman 5.4) exits 1 and names the unit and the
// key when it cannot convert one ("converting \"web.container\":
// unsupported key 'Foo' in group 'Container' in ..."); its warnings and
// "Loading source unit file" lines are not errors.
func CheckQuadlet(ctx context.Context, root string) error {
	cmd := exec.CommandContext(ctx, "chroot", root, QuadletBin, "-dryrun")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if msg := quadletErrors(stderr.String()); err != nil || msg != "" {
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("%w: the image's Quadlet refused the generated units: %s", ErrRefused, msg)
	}
	return nil
}

func quadletErrors(stderr string) string {
	var errs []string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		if _, rest, ok := strings.Cut(l, "]: "); ok && strings.HasPrefix(l, "quadlet-generator[") {
			l = rest
		}
		if l == "" || strings.HasPrefix(l, "Loading source unit file") || strings.HasPrefix(l, "Warning:") {
			continue
		}
		errs = append(errs, l)
	}
	return strings.Join(errs, "; ")
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
