package minimal

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/twinroot/twinroot/internal/initramfs"
	"github.com/twinroot/twinroot/internal/testenv"
)

// kernelDir returns the kernel fetched by `make kernel` (build/kernel at the
// repository root, or $TWINROOT_KERNEL_DIR) and skips the test without one.
func kernelDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TWINROOT_KERNEL_DIR")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, "build", "kernel")
	}
	if _, err := os.Stat(filepath.Join(dir, "vmlinuz")); err != nil {
		testenv.Missing(t, fmt.Sprintf("no kernel in %s: run `make kernel` (or set TWINROOT_KERNEL_DIR)", dir))
	}
	return dir
}

// repoRoot walks up from the test's directory to the one holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

var (
	initOnce sync.Once
	initBin  string
	initErr  error
)

// testInit builds the init program once per test binary, so every image
// of a test run carries the same init.
func testInit(t *testing.T) string {
	t.Helper()
	initOnce.Do(func() {
		dir, err := os.MkdirTemp("", "twinroot-minimal-test-")
		if err != nil {
			initErr = err
			return
		}
		initBin = filepath.Join(dir, "init")
		initErr = BuildInit(context.Background(), initBin)
	})
	if initErr != nil {
		t.Fatalf("build init: %v", initErr)
	}
	return initBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if initBin != "" {
		os.RemoveAll(filepath.Dir(initBin))
	}
	os.Exit(code)
}

func TestBuildReproducible(t *testing.T) {
	kdir := kernelDir(t)
	ctx := context.Background()
	opts := Options{KernelDir: kdir, Version: "1.0.0", Variant: Unhealthy}
	var images, initrds [2][]byte
	for i := range images {
		// A fresh init build each time: the go tool must give the same bytes too.
		dir := t.TempDir()
		img, initrd := filepath.Join(dir, "slot.img"), filepath.Join(dir, "initrd.img")
		if err := Build(ctx, opts, img); err != nil {
			t.Fatalf("Build: %v", err)
		}
		if err := BuildInitramfs(ctx, opts, initrd); err != nil {
			t.Fatalf("BuildInitramfs: %v", err)
		}
		images[i], initrds[i] = readFile(t, img), readFile(t, initrd)
	}
	if !bytes.Equal(images[0], images[1]) {
		t.Errorf("two builds of the same slot image differ")
	}
	if !bytes.Equal(initrds[0], initrds[1]) {
		t.Errorf("two builds of the same initramfs differ")
	}
	t.Logf("slot image %d bytes, initramfs %d bytes (no updater)", len(images[0]), len(initrds[0]))

	// The slot image, as unsquashfs sees it.
	dir := t.TempDir()
	img := filepath.Join(dir, "slot.img")
	os.WriteFile(img, images[0], 0o644)
	list := run(t, "unsquashfs", "-l", img)
	for _, want := range []string{"squashfs-root/boot/vmlinuz", "squashfs-root/boot/initrd.img", "squashfs-root/etc/twinroot/version"} {
		if !strings.Contains(list, want+"\n") {
			t.Errorf("unsquashfs -l does not list %s:\n%s", want, list)
		}
	}
	if super := run(t, "unsquashfs", "-s", img); !strings.Contains(super, "Compression xz") {
		t.Errorf("unsquashfs -s does not report xz compression:\n%s", super)
	}
	run(t, "unsquashfs", "-d", filepath.Join(dir, "root"), img)
	if got, want := string(readFile(t, filepath.Join(dir, "root", "etc", "twinroot", "version"))), "1.0.0\n"; got != want {
		t.Errorf("/etc/twinroot/version = %q, want %q", got, want)
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, "root", "boot", "vmlinuz")), readFile(t, filepath.Join(kdir, "vmlinuz"))) {
		t.Errorf("/boot/vmlinuz is not the kernel of %s", kdir)
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, "root", "boot", "initrd.img")), initrds[0]) {
		t.Errorf("/boot/initrd.img is not the initramfs BuildInitramfs writes")
	}
}

func TestInitramfsContent(t *testing.T) {
	kdir := kernelDir(t)
	dir := t.TempDir()
	updater := filepath.Join(dir, "updater")
	os.WriteFile(updater, []byte("not really an updater"), 0o755)
	initrd := filepath.Join(dir, "initrd.img")
	opts := Options{KernelDir: kdir, Version: "2.0.0", Variant: Panic, Updater: updater, Init: testInit(t)}
	if err := BuildInitramfs(context.Background(), opts, initrd); err != nil {
		t.Fatalf("BuildInitramfs: %v", err)
	}

	// Unpack with the real tools, as the kernel would.
	x := filepath.Join(dir, "x")
	os.Mkdir(x, 0o755)
	list := run(t, "sh", "-c", "gzip -dc "+initrd+" | cpio -itv --quiet")
	cmd := exec.Command("sh", "-c", "gzip -dc "+initrd+" | cpio -id --quiet --no-absolute-filenames 2>&1")
	cmd.Dir = x
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("unpack initramfs: %v: %s", err, b)
	}
	release := strings.TrimSpace(string(readFile(t, filepath.Join(kdir, "version"))))
	for name, want := range map[string]string{
		"etc/twinroot/version": "2.0.0\n",
		"etc/twinroot/variant": "panic\n",
		"bin/updater":          "not really an updater",
	} {
		if got := string(readFile(t, filepath.Join(x, name))); got != want {
			t.Errorf("/%s = %q, want %q", name, got, want)
		}
	}
	if !bytes.Equal(readFile(t, filepath.Join(x, "init")), readFile(t, opts.Init)) {
		t.Error("/init is not the init binary")
	}
	for _, want := range []string{
		"crw------- ", " dev/console\n", " dev/null\n",
		" sbin/reboot -> /init\n", " sbin/poweroff -> /init\n",
		"drwxrwxrwt ",
		" lib/modules/" + release + "/kernel/fs/ext4/ext4.ko\n",
		" lib/modules/" + release + "/kernel/fs/jbd2/jbd2.ko\n", // a dependency
		" lib/modules/" + release + "/kernel/drivers/block/virtio_blk.ko\n",
	} {
		if !strings.Contains(list, want) {
			t.Errorf("cpio -itv does not show %q:\n%s", want, list)
		}
	}
	if strings.Contains(list, "kernel/fs/btrfs/") {
		t.Error("initramfs carries btrfs, which nothing asked for")
	}
	// Every module modules.dep names is in the archive, and nothing else.
	dep := string(readFile(t, filepath.Join(x, "lib", "modules", release, "modules.dep")))
	var fromDep, fromTree []string
	for _, l := range strings.Split(strings.TrimSpace(dep), "\n") {
		mod, _, _ := strings.Cut(l, ":")
		fromDep = append(fromDep, mod)
	}
	modDir := filepath.Join(x, "lib", "modules", release)
	filepath.Walk(modDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".ko") {
			rel, _ := filepath.Rel(modDir, p)
			fromTree = append(fromTree, rel)
		}
		return nil
	})
	if diff := cmp.Diff(fromDep, fromTree); diff != "" {
		t.Errorf("modules.dep versus the modules in the archive (-dep +archive):\n%s", diff)
	}
	fi, _ := os.Stat(initrd)
	t.Logf("initramfs %d bytes with %d modules", fi.Size(), len(fromTree))
}

func TestBuildGzip(t *testing.T) {
	kdir := kernelDir(t)
	img := filepath.Join(t.TempDir(), "slot.img")
	opts := Options{KernelDir: kdir, Version: "1.0.1", Compression: "gzip", Init: testInit(t)}
	if err := Build(context.Background(), opts, img); err != nil {
		t.Fatalf("Build: %v", err)
	}
	if super := run(t, "unsquashfs", "-s", img); !strings.Contains(super, "Compression gzip") {
		t.Errorf("unsquashfs -s does not report gzip compression:\n%s", super)
	}
}

func TestBuildErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "kernel")
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "slot.img")
	for _, tc := range []struct {
		name string
		opts Options
		want []string
	}{
		{"no kernel dir", Options{KernelDir: missing, Version: "1"}, []string{missing, "run `make kernel`"}},
		{"empty kernel dir", Options{Version: "1"}, []string{"run `make kernel`"}},
		{"no version", Options{KernelDir: missing}, []string{"version"}},
		{"bad variant", Options{KernelDir: missing, Version: "1", Variant: "flaky"}, []string{`"flaky"`}},
		{"zstd", Options{KernelDir: missing, Version: "1", Compression: "zstd"}, []string{"zstd", "GRUB"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, build := range map[string]func(context.Context, Options, string) error{"Build": Build, "BuildInitramfs": BuildInitramfs} {
				err := build(ctx, tc.opts, out)
				if err == nil {
					t.Fatalf("%s(%+v) = nil, want an error", name, tc.opts)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s error %q does not mention %q", name, err, w)
					}
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("%s error %q is not one line", name, err)
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a failed build left %s", out)
			}
		})
	}
}

func TestSelectModules(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(
		"kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko\n"+
			"kernel/lib/crc16.ko:\n"+
			"kernel/fs/jbd2/jbd2.ko:\n"+
			"kernel/fs/btrfs/btrfs.ko: kernel/lib/libcrc32c.ko\n"+
			"kernel/lib/libcrc32c.ko:\n"+
			"kernel/drivers/usb/storage/usb-storage.ko: kernel/drivers/usb/core/usbcore.ko\n"+
			"kernel/drivers/usb/core/usbcore.ko:\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/fs/fat/vfat.ko\n"), 0o644)

	set, err := initramfs.SelectModules(dir, []string{"ext4", "usb_storage", "vfat"})
	if err != nil {
		t.Fatalf("SelectModules: %v", err)
	}
	want := []string{
		"kernel/drivers/usb/core/usbcore.ko",
		"kernel/drivers/usb/storage/usb-storage.ko",
		"kernel/fs/ext4/ext4.ko",
		"kernel/fs/jbd2/jbd2.ko",
		"kernel/lib/crc16.ko",
	}
	if diff := cmp.Diff(want, set.Files); diff != "" {
		t.Errorf("selected modules (-want +got):\n%s", diff)
	}
	wantDep := "kernel/drivers/usb/core/usbcore.ko:\n" +
		"kernel/drivers/usb/storage/usb-storage.ko: kernel/drivers/usb/core/usbcore.ko\n" +
		"kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko\n" +
		"kernel/fs/jbd2/jbd2.ko:\n" +
		"kernel/lib/crc16.ko:\n"
	if diff := cmp.Diff(wantDep, string(set.Dep)); diff != "" {
		t.Errorf("modules.dep (-want +got):\n%s", diff)
	}

	if _, err := initramfs.SelectModules(dir, []string{"ext4", "zfs"}); err == nil || !strings.Contains(err.Error(), "zfs") {
		t.Errorf("SelectModules(zfs) = %v, want an error naming zfs", err)
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	b, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
	}
	return string(b)
}

// TestBuildRoot checks that BuildRoot writes the root Build squashes, with
// the modes mksquashfs will store, into a directory a release build takes.
func TestBuildRoot(t *testing.T) {
	kdir := kernelDir(t)
	ctx := context.Background()
	opts := Options{KernelDir: kdir, Version: "3.1.0", Variant: Unhealthy, Init: testInit(t)}
	root := filepath.Join(t.TempDir(), "root")
	if err := BuildRoot(ctx, opts, root); err != nil {
		t.Fatalf("BuildRoot: %v", err)
	}
	img := filepath.Join(t.TempDir(), "slot.img")
	if err := Build(ctx, opts, img); err != nil {
		t.Fatalf("Build: %v", err)
	}
	squashed := filepath.Join(t.TempDir(), "x")
	run(t, "unsquashfs", "-d", squashed, img)
	var got []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		got = append(got, rel+" "+fi.Mode().String())
		if !d.IsDir() && !bytes.Equal(readFile(t, p), readFile(t, filepath.Join(squashed, rel))) {
			t.Errorf("/%s differs between BuildRoot and Build", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		". drwxr-xr-x", "boot drwxr-xr-x", "boot/initrd.img -rw-r--r--", "boot/vmlinuz -rw-r--r--",
		"etc drwxr-xr-x", "etc/twinroot drwxr-xr-x", "etc/twinroot/version -rw-r--r--",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("BuildRoot tree (-want +got):\n%s", diff)
	}
	if got, want := string(readFile(t, filepath.Join(root, "etc", "twinroot", "version"))), "3.1.0\n"; got != want {
		t.Errorf("/etc/twinroot/version = %q, want %q", got, want)
	}
}
