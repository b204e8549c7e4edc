package iso

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/internal/bootstate"
	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/install"
	"github.com/twinroot/twinroot/internal/partition"
)

// liveSystem is a fake machine for Live: a sysfs with a CD drive holding
// the ISO (sr0) and one empty fixed disk (vda), both files; "mounting"
// the medium extracts the ISO with xorriso.
type liveSystem struct {
	dir, iso, disk, cmdline string
	vol                     string
}

func newLiveSystem(t *testing.T) *liveSystem {
	t.Helper()
	f := newFixture(t)
	// Real GRUB images: install writes them onto the target.
	f.opts.GrubDir = filepath.Join(f.dir, "realgrub")
	if err := grub.BuildImages(t.Context(), f.opts.GrubDir); err != nil {
		t.Fatal(err)
	}
	r, err := Build(t.Context(), f.opts)
	if err != nil {
		t.Fatal(err)
	}
	s := &liveSystem{dir: t.TempDir(), vol: r.VolumeID}
	s.iso = filepath.Join(s.dir, "dev", "sr0")
	s.disk = filepath.Join(s.dir, "dev", "vda")
	s.cmdline = filepath.Join(s.dir, "cmdline")
	os.MkdirAll(filepath.Join(s.dir, "dev"), 0o755)
	b, err := os.ReadFile(r.Out)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(s.iso, b, 0o444)
	df, err := os.Create(s.disk)
	if err != nil {
		t.Fatal(err)
	}
	df.Truncate(partition.MinDiskSize(64 * partition.MiB))
	df.Close()
	for _, d := range []struct {
		name      string
		sectors   int64
		removable string
	}{{"sr0", int64(len(b)) / 512, "1"}, {"vda", partition.MinDiskSize(64*partition.MiB) / 512, "0"}} {
		sys := filepath.Join(s.dir, "sys", "block", d.name)
		os.MkdirAll(sys, 0o755)
		os.WriteFile(filepath.Join(sys, "size"), []byte(strconv.FormatInt(d.sectors, 10)+"\n"), 0o644)
		os.WriteFile(filepath.Join(sys, "removable"), []byte(d.removable+"\n"), 0o644)
	}
	return s
}

func (s *liveSystem) live(t *testing.T, args string, answer string) (*Live, *bytes.Buffer) {
	t.Helper()
	if err := os.WriteFile(s.cmdline, []byte("console=ttyS0 "+ArgMedium+"="+s.vol+" "+args+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := &bytes.Buffer{}
	mnt := filepath.Join(t.TempDir(), "medium")
	return &Live{
		Cmdline:  s.cmdline,
		Finder:   partition.Finder{SysBlock: filepath.Join(s.dir, "sys", "block"), DevDir: filepath.Join(s.dir, "dev")},
		MountDir: mnt,
		Mount: func(dev, dir string) error {
			if dev != s.iso {
				t.Errorf("mounted %s, want the medium %s", dev, s.iso)
			}
			out, err := exec.Command("xorriso", "-osirrox", "on", "-indev", dev, "-extract", "/", dir).CombinedOutput()
			if err != nil {
				t.Fatalf("extract the ISO: %v: %s", err, out)
			}
			return nil
		},
		Out: out,
		Ask: func(prompt string) string {
			out.WriteString(prompt + answer + "\n")
			return answer
		},
	}, out
}

func sum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestLive runs the ISO's installer on a fake machine: it asks and
// cancels on anything but yes, installs on yes (never touching the
// medium), refuses the installed disk without twinroot.wipe-data=1 and
// installs over it with it.
func TestLive(t *testing.T) {
	s := newLiveSystem(t)
	isoSum, emptySum := sum(t, s.iso), sum(t, s.disk)

	l, out := s.live(t, "", "no")
	if _, err := l.Run(t.Context()); !errors.Is(err, install.ErrNotConfirmed) {
		t.Fatalf("Run answered no = %v, want ErrNotConfirmed\n%s", err, out)
	}
	if sum(t, s.disk) != emptySum {
		t.Error("a cancelled install wrote the disk")
	}
	for _, want := range []string{"plan: install 1.0.0 onto " + s.disk, "type yes and Enter to erase everything on " + s.disk} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}

	l, out = s.live(t, "", "yes")
	r, err := l.Run(t.Context())
	if err != nil {
		t.Fatalf("Run answered yes: %v\n%s", err, out)
	}
	if r.Disk != s.disk {
		t.Errorf("installed on %s, want %s", r.Disk, s.disk)
	}
	for _, want := range []string{"manifest signed by a key the image trusts", "writing slot A: 100%", "installed 1.0.0 on " + s.disk} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
	d, err := bootstate.OpenDisk(s.disk)
	if err != nil {
		t.Fatal(err)
	}
	st, err := d.Load()
	d.Close()
	if err != nil || st != bootstate.Initial() {
		t.Errorf("boot state after install = %+v, %v; want %+v", st, err, bootstate.Initial())
	}
	if sum(t, s.iso) != isoSum {
		t.Error("the installer wrote to its own medium")
	}

	installed := sum(t, s.disk)
	l, out = s.live(t, ArgYes+"=1", "")
	_, err = l.Run(t.Context())
	if !errors.Is(err, partition.ErrNoDisk) || !strings.Contains(err.Error(), "holds twinroot data") || !strings.Contains(err.Error(), ArgWipeData+"=1") {
		t.Errorf("Run on an installed disk = %v, want a refusal naming %s=1", err, ArgWipeData)
	}
	if sum(t, s.disk) != installed {
		t.Error("a refused install changed the disk")
	}

	l, out = s.live(t, ArgYes+"=1 "+ArgWipeData+"=1", "")
	if _, err := l.Run(t.Context()); err != nil {
		t.Errorf("Run with %s=1: %v\n%s", ArgWipeData, err, out)
	}
	if !strings.Contains(out.String(), "it will be ERASED") {
		t.Errorf("console does not warn that twinroot data is erased:\n%s", out)
	}
}
