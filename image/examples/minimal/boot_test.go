package minimal

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Generous bounds for a loaded 2-core CI machine under TCG; a boot to ready
// takes about 5 s on an idle one.
const (
	bootTimeout = 4 * time.Minute
	stepTimeout = 3 * time.Minute
)

// vm is a QEMU direct kernel boot with its serial console on a pipe. This
// package keeps its own small runner so it does not depend on the qemu package
// (which boots images built from this one).
type vm struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	start time.Time
	done  chan struct{} // closed when QEMU has exited

	mu     sync.Mutex
	lines  []string
	cursor int // lines before cursor were consumed by expect
}

type bootConfig struct {
	kernel, initrd, append string
	disk                   string // attached as a virtio disk
	noReboot               bool
}

func startVM(t *testing.T, c bootConfig) *vm {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatalf("qemu-system-x86_64 is not installed: %v", err)
	}
	args := []string{
		"-accel", "tcg", "-m", "512", "-nographic",
		"-kernel", c.kernel, "-initrd", c.initrd, "-append", c.append,
		"-drive", "file=" + c.disk + ",format=raw,if=virtio",
		// init configures the NIC for QEMU user networking; restrict=on keeps
		// the guest off every network.
		"-netdev", "user,id=n,restrict=on", "-device", "virtio-net-pci,netdev=n",
	}
	if c.noReboot {
		args = append(args, "-no-reboot")
	}
	v := &vm{t: t, done: make(chan struct{})}
	v.cmd = exec.Command("qemu-system-x86_64", args...)
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var err error
	if v.in, err = v.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := v.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	v.cmd.Stderr = v.cmd.Stdout
	log, err := os.Create(filepath.Join(t.TempDir(), "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	v.start = time.Now()
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(io.TeeReader(out, log))
		for sc.Scan() {
			v.mu.Lock()
			v.lines = append(v.lines, strings.TrimRight(sc.Text(), "\r"))
			v.mu.Unlock()
		}
		v.cmd.Wait()
		log.Close()
		close(v.done)
	}()
	t.Cleanup(func() {
		v.cmd.Process.Kill()
		<-v.done
		if t.Failed() {
			t.Logf("console of the failed boot:\n%s", v.tail(60))
		}
	})
	return v
}

// expect waits for a console line matching pattern, consumes the console up
// to it and returns it.
func (v *vm) expect(pattern string, timeout time.Duration) string {
	v.t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.Now().Add(timeout)
	for {
		v.mu.Lock()
		for i := v.cursor; i < len(v.lines); i++ {
			if re.MatchString(v.lines[i]) {
				v.cursor = i + 1
				l := v.lines[i]
				v.mu.Unlock()
				return l
			}
		}
		v.mu.Unlock()
		select {
		case <-v.done:
			// Lines read before the exit are all in; look once more.
			v.mu.Lock()
			found := false
			for i := v.cursor; i < len(v.lines); i++ {
				found = found || re.MatchString(v.lines[i])
			}
			v.mu.Unlock()
			if !found {
				v.t.Fatalf("qemu exited after %v without printing /%s/:\n%s", time.Since(v.start).Round(time.Millisecond), pattern, v.tail(40))
			}
			continue
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("no console line matched /%s/ within %v:\n%s", pattern, timeout, v.tail(40))
		}
	}
}

func (v *vm) send(line string) {
	v.t.Helper()
	if _, err := io.WriteString(v.in, line+"\n"); err != nil {
		v.t.Fatalf("send %q: %v", line, err)
	}
}

// wait waits for QEMU to exit by itself (power off, or a reboot under -no-reboot).
func (v *vm) wait(timeout time.Duration) {
	v.t.Helper()
	select {
	case <-v.done:
	case <-time.After(timeout):
		v.t.Fatalf("qemu still running %v later:\n%s", timeout, v.tail(40))
	}
}

// seen returns the first console line so far that matches pattern, or "".
func (v *vm) seen(pattern string) string {
	re := regexp.MustCompile(pattern)
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, l := range v.lines {
		if re.MatchString(l) {
			return l
		}
	}
	return ""
}

func (v *vm) tail(n int) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	l := v.lines
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// bootFiles builds an initramfs for opts under dir and returns the kernel and
// initramfs paths.
func bootFiles(t *testing.T, opts Options, dir string) (kernel, initrd string) {
	t.Helper()
	initrd = filepath.Join(dir, "initrd.img")
	if err := BuildInitramfs(context.Background(), opts, initrd); err != nil {
		t.Fatalf("BuildInitramfs: %v", err)
	}
	fi, _ := os.Stat(initrd)
	t.Logf("initramfs: %d bytes", fi.Size())
	return filepath.Join(opts.KernelDir, "vmlinuz"), initrd
}

func blankDisk(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "blank.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeUpdater builds testdata/fakeupdater as a static binary.
func fakeUpdater(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "fakeupdater")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/fakeupdater")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build fake updater: %v\n%s", err, b)
	}
	return out
}

func TestBootNoUpdater(t *testing.T) {
	if testing.Short() {
		t.Skip("QEMU boot: slow")
	}
	kdir := kernelDir(t)
	dir := t.TempDir()
	kernel, initrd := bootFiles(t, Options{KernelDir: kdir, Version: "1.0.0", Init: testInit(t)}, dir)
	v := startVM(t, bootConfig{
		kernel: kernel, initrd: initrd, disk: blankDisk(t, dir),
		append: "console=ttyS0,115200 twinroot.slot=b panic=5",
	})
	v.expect(`^twinroot-init: modules loaded, disks vda `, bootTimeout)
	v.expect(`^twinroot-init: network eth0 10\.0\.2\.15/24 via 10\.0\.2\.2$`, stepTimeout)
	v.expect(`^twinroot-init: slot=b version=1\.0\.0 variant=ok$`, stepTimeout)
	v.expect(`^twinroot-init: ready$`, stepTimeout)
	t.Logf("boot to ready: %v", time.Since(v.start).Round(time.Millisecond))
	if l := v.seen(`^twinroot-init: (module |mount |mkdir |open console|network:|slot root:|no disk)`); l != "" {
		t.Errorf("init reported a setup failure: %q", l)
	}
	v.send("run status")
	v.expect(`^twinroot-init: run exit=127$`, stepTimeout)
	v.send("frobnicate")
	v.expect(`^twinroot-init: unknown command$`, stepTimeout)
	v.send("poweroff")
	v.wait(stepTimeout)
	t.Logf("boot, commands and power off: %v", time.Since(v.start).Round(time.Millisecond))
}

func TestBootPanic(t *testing.T) {
	if testing.Short() {
		t.Skip("QEMU boot: slow")
	}
	kdir := kernelDir(t)
	dir := t.TempDir()
	kernel, initrd := bootFiles(t, Options{KernelDir: kdir, Version: "6.6.6", Variant: Panic, Init: testInit(t)}, dir)
	v := startVM(t, bootConfig{
		kernel: kernel, initrd: initrd, disk: blankDisk(t, dir), noReboot: true,
		append: "console=ttyS0,115200 twinroot.slot=a panic=5",
	})
	v.expect(`^twinroot-init: slot=a version=6\.6\.6 variant=panic$`, bootTimeout)
	v.expect(`^twinroot-init: panic variant, exiting$`, stepTimeout)
	v.expect(`Kernel panic - not syncing: Attempted to kill init`, stepTimeout)
	v.expect(`Rebooting in 5 seconds`, stepTimeout)
	// -no-reboot: the reboot panic=5 asks for ends QEMU.
	v.wait(stepTimeout)
	t.Logf("boot, panic and reboot: %v", time.Since(v.start).Round(time.Millisecond))
}

// TestBootUpdaterFromSlot boots an unhealthy image whose slot B sits on a
// GPT disk as the installer lays it out: init mounts the running slot, runs
// `updater boot` whose health gate fails, passes run's exit codes through,
// and reboots on command.
func TestBootUpdaterFromSlot(t *testing.T) {
	if testing.Short() {
		t.Skip("QEMU boot: slow")
	}
	kdir := kernelDir(t)
	dir := t.TempDir()
	opts := Options{KernelDir: kdir, Version: "2.0.0", Variant: Unhealthy, Updater: fakeUpdater(t, dir), Init: testInit(t)}
	slot := filepath.Join(dir, "slot.img")
	if err := Build(context.Background(), opts, slot); err != nil {
		t.Fatalf("Build: %v", err)
	}
	disk := gptDisk(t, dir, slot)
	kernel, initrd := bootFiles(t, opts, dir)

	v := startVM(t, bootConfig{
		kernel: kernel, initrd: initrd, disk: disk, noReboot: true,
		append: "console=ttyS0,115200 twinroot.slot=b panic=5",
	})
	v.expect(`^twinroot-init: slot root vda4 \(twinroot-b\) on /run/twinroot/slot$`, bootTimeout)
	v.expect(`^twinroot-init: slot=b version=2\.0\.0 variant=unhealthy$`, stepTimeout)
	v.expect(`^twinroot-init: health failed$`, stepTimeout)
	v.expect(`^fakeupdater: health gate failed: exit status 1$`, stepTimeout)
	v.expect(`^twinroot-init: updater boot exit=3$`, stepTimeout)
	v.expect(`^twinroot-init: ready$`, stepTimeout)
	t.Logf("boot to ready: %v", time.Since(v.start).Round(time.Millisecond))
	if l := v.seen(`^twinroot-init: (module |mount |mkdir |open console|network:|slot root:|no disk)`); l != "" {
		t.Errorf("init reported a setup failure: %q", l)
	}
	v.send(`run status -o "json please"`)
	v.expect(`^fakeupdater: args=\["status" "-o" "json please"\]$`, stepTimeout)
	v.expect(`^twinroot-init: run exit=0$`, stepTimeout)
	v.send("run fail 7")
	v.expect(`^twinroot-init: run exit=7$`, stepTimeout)
	v.send("reboot")
	v.expect(`reboot: Restarting system`, stepTimeout)
	v.wait(stepTimeout)
}

// gptDisk lays out a disk image with the twinroot partitions (small sizes)
// using sgdisk, and writes slot into partition 4 (twinroot-b).
func gptDisk(t *testing.T, dir, slot string) string {
	t.Helper()
	disk := filepath.Join(dir, "disk.img")
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(96 << 20); err != nil {
		t.Fatal(err)
	}
	run(t, "sgdisk",
		"-n", "1:2048:+1M", "-t", "1:EF02", "-c", "1:twinroot-bios",
		"-n", "2:0:+16M", "-t", "2:EF00", "-c", "2:twinroot-esp",
		"-n", "3:0:+24M", "-t", "3:4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "-c", "3:twinroot-a",
		"-n", "4:0:+24M", "-t", "4:4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "-c", "4:twinroot-b",
		"-n", "5:0:0", "-t", "5:8300", "-c", "5:twinroot-data",
		disk)
	info := run(t, "sgdisk", "-i", "4", disk)
	m := regexp.MustCompile(`First sector: (\d+)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("sgdisk -i 4 shows no first sector:\n%s", info)
	}
	first, _ := strconv.ParseInt(m[1], 10, 64)
	img := readFile(t, slot)
	if _, err := f.WriteAt(img, first*512); err != nil {
		t.Fatalf("write slot image at sector %d: %v", first, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if out := run(t, "sgdisk", "-v", disk); !strings.Contains(out, "No problems found") {
		t.Fatalf("sgdisk -v:\n%s", out)
	}
	return disk
}
