package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/grub"
	"github.com/twinroot/twinroot/internal/install"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/refusal"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/testenv"
	"github.com/twinroot/twinroot/internal/testrelease"
)

// TestBadReleaseEveryCaller gives the same bad release to each path into
// a slot (installer install, updater apply from the channel, updater apply
// --from local media): each refuses it with the same reason and exit code
// 3, in one line, and a refusal that comes before the first write leaves
// the disk byte for byte as it was.
func TestBadReleaseEveryCaller(t *testing.T) {
	ctx := context.Background()
	const slotSize = 32 << 20
	k, pub := testrelease.Key(t)
	stranger, _ := keys.Generate(nil)
	grubDir := t.TempDir()
	if err := grub.BuildImages(ctx, grubDir); err != nil {
		t.Fatal(err)
	}
	newDisk := func() string {
		p := filepath.Join(t.TempDir(), "disk.img")
		f, _ := os.Create(p)
		f.Truncate(partition.MinDiskSize(slotSize))
		f.Close()
		return p
	}
	// The device runs 1.0.0, serial 5.
	device := newDisk()
	v1 := testrelease.Small(t, pub, "1.0.0", 5, 512<<10, "")
	if _, err := install.Install(ctx, install.Options{Disk: device, Image: filepath.Join(v1, release.SlotFile), GrubDir: grubDir, SlotSize: slotSize}); err != nil {
		t.Fatal(err)
	}
	sign := func(dir string, by *keys.PrivateKey) string {
		if _, _, err := release.SignDir(ctx, dir, "stable", time.Now(), time.Hour, by); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	flip := func(path string, at int64) {
		f, _ := os.OpenFile(path, os.O_RDWR, 0)
		defer f.Close()
		b := make([]byte, 1)
		f.ReadAt(b, at)
		b[0] ^= 0xff
		f.WriteAt(b, at)
	}
	for _, tc := range []struct {
		name    string
		dir     func() string
		want    error
		reason  string
		install bool // the installer judges it too (an empty disk has no serial to be older than)
		written bool // refused after the first write (the slot stays unbootable)
	}{
		{"unsigned", func() string { return testrelease.Small(t, pub, "2.0.0", 6, 512<<10, "") }, manifest.ErrBadSignature, "not signed", true, false},
		{"untrusted key", func() string { return sign(testrelease.Small(t, pub, "2.0.0", 6, 512<<10, ""), stranger) }, manifest.ErrUntrustedKey, "not signed by a trusted key", true, false},
		{"tampered image", func() string {
			dir := sign(testrelease.Small(t, pub, "2.0.0", 6, 512<<10, ""), k)
			flip(filepath.Join(dir, release.ObjectFile), 300<<10)
			flip(filepath.Join(dir, release.SlotFile), 300<<10)
			return dir
		}, refusal.ErrMismatch, "bytes differ from what was signed", true, true},
		{"older serial", func() string { return sign(testrelease.Small(t, pub, "0.9.0", 4, 512<<10, ""), k) }, manifest.ErrOlder, "below the running serial 5", false, false},
		{"too large", func() string { return sign(testrelease.Small(t, pub, "2.0.0", 6, slotSize+1<<20, "none"), k) }, refusal.ErrDoesNotFit, "does not fit the slot", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir()
			store := t.TempDir()
			toStore(t, dir, filepath.Join(store, "stable"))
			cfg := filepath.Join(t.TempDir(), "device.yaml")
			os.WriteFile(cfg, []byte("source: file://"+store+"\nchannel: stable\n"), 0o600)
			callers := map[string]func(disk string) (string, int){
				"channel": func(disk string) (string, int) {
					return lastLine(run(t, "apply", "--disk", disk, "--running-slot", "a", "--config", cfg, "--state-dir", t.TempDir(), "--reboot", "next-boot"))
				},
				"local": func(disk string) (string, int) {
					return lastLine(run(t, "apply", "--disk", disk, "--running-slot", "a", "--config", cfg, "--state-dir", t.TempDir(), "--reboot", "next-boot", "--from", dir))
				},
			}
			if tc.install {
				callers["install"] = func(disk string) (string, int) {
					_, err := install.Install(ctx, install.Options{Disk: disk, Image: dir, GrubDir: grubDir, SlotSize: slotSize})
					if err == nil {
						return "", 0
					}
					if !errors.Is(err, tc.want) {
						t.Errorf("install: %v, want %v", err, tc.want)
					}
					return err.Error(), cli.ExitCode(err)
				}
			}
			for name, call := range callers {
				disk := filepath.Join(t.TempDir(), "disk.img")
				if name == "install" {
					disk = newDisk()
				} else if out, err := exec.Command("cp", "--sparse=always", device, disk).CombinedOutput(); err != nil {
					t.Fatalf("cp: %v: %s", err, out)
				}
				before := testenv.FileSHA256(t, disk)
				msg, code := call(disk)
				t.Logf("%s: exit %d: %s", name, code, msg)
				if code != cli.ExitRefused || !strings.Contains(msg, tc.reason) || strings.Contains(msg, "\n") {
					t.Errorf("%s: exit %d, %q; want exit 3 and one line saying %q", name, code, msg, tc.reason)
				}
				if !tc.written && testenv.FileSHA256(t, disk) != before {
					t.Errorf("%s: the disk changed, though the refusal came before the first write", name)
				}
			}
		})
	}
}

// toStore lays a build output directory out as a channel of a file://
// store, as it is, signed or not (updater publish would sign it).
func toStore(t *testing.T, dir, channel string) {
	t.Helper()
	m, err := os.ReadFile(filepath.Join(dir, release.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var version string
	if env, err := manifest.ParseEnvelope(m); err == nil {
		bare, _ := manifest.Decode(env.Manifest)
		version = bare.Version
	} else {
		bare, _ := manifest.Decode(m)
		version = bare.Version
	}
	os.MkdirAll(filepath.Join(channel, version), 0o755)
	os.WriteFile(filepath.Join(channel, manifest.Latest), m, 0o644)
	for _, f := range []string{release.ObjectFile, release.IndexFile, release.ManifestFile} {
		if err := os.Link(filepath.Join(dir, f), filepath.Join(channel, version, f)); err != nil {
			t.Fatal(err)
		}
	}
}

func lastLine(out string, code int) (string, int) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1], code
}
