package qemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Boot timeouts: generous, because TCG on a loaded 2-core machine is slow
// and OVMF alone needs seconds before GRUB runs.
const (
	harnessBootTimeout = 3 * time.Minute
	harnessStepTimeout = 3 * time.Minute
)

var harnessFirmwares = []Firmware{BIOS, UEFI}

// harnessSerial is the head of every test grub.cfg: GRUB talks on the first
// serial port only.
const harnessSerial = `serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
`

// harnessMarkers echoes two markers with a pause between them and powers off.
const harnessMarkers = harnessSerial + `echo "HARNESS-ONE"
sleep 2
echo "HARNESS-TWO"
halt
`

// harnessLong prints one marker and then waits ten minutes.
const harnessLong = harnessSerial + `echo "HARNESS-ONE"
sleep 600
echo "HARNESS-TWO"
halt
`

// harnessRead prompts without a newline and echoes what it reads. It reads
// keys from the firmware's console, not from the serial port: SeaBIOS
// (sercon) and OVMF (its terminal driver) poll the serial port themselves
// and turn what arrives into key presses, so a GRUB that reads the port
// directly loses whatever keys the firmware grabbed first.
const harnessRead = `serial --unit=0 --speed=115200
terminal_input console
terminal_output serial
echo -n "name? "
read answer
echo "GOT:${answer}:END"
halt
`

// harnessISO builds a GRUB rescue ISO (bootable from BIOS and UEFI, as a
// CD-ROM or as a disk) that runs grubCfg.
func harnessISO(t *testing.T, grubCfg string) string {
	t.Helper()
	if _, err := exec.LookPath("grub-mkrescue"); err != nil {
		t.Fatalf("grub-mkrescue (Debian grub-common, grub-pc-bin, grub-efi-amd64-bin, xorriso, mtools): %v", err)
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "boot", "grub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "boot", "grub", "grub.cfg"), []byte(grubCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(dir, "test.iso")
	out, err := exec.Command("grub-mkrescue", "-o", iso, root).CombinedOutput()
	if err != nil {
		t.Fatalf("grub-mkrescue: %v\n%s", err, out)
	}
	return iso
}

func harnessNeedQEMU(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots QEMU; skipped with -short")
	}
}

// harnessCheckClean asserts that the console holds no carriage return,
// control character or escape sequence.
func harnessCheckClean(t *testing.T, v *VM) {
	t.Helper()
	for i, r := range v.Console() {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			t.Errorf("console holds control character %q at offset %d", r, i)
			return
		}
	}
}

func TestBootCDROM(t *testing.T) {
	harnessNeedQEMU(t)
	iso := harnessISO(t, harnessMarkers)
	for _, fw := range harnessFirmwares {
		t.Run(string(fw), func(t *testing.T) {
			v := StartT(t, Config{
				Name:     "cdrom-" + string(fw),
				Firmware: fw,
				Drives:   []Drive{{Path: iso, Media: "cdrom"}},
				MemoryMB: 256,
			})
			line, err := v.Expect(`HARNESS-ONE`, harnessBootTimeout)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := line, "HARNESS-ONE"; got != want {
				t.Errorf("Expect(HARNESS-ONE) line = %q, want %q", got, want)
			}
			first := v.Elapsed()
			if _, err := v.Expect(`^HARNESS-TWO$`, harnessStepTimeout); err != nil {
				t.Fatal(err)
			}
			if err := v.Wait(harnessStepTimeout); err != nil {
				t.Fatalf("Wait for GRUB's halt: %v", err)
			}
			harnessCheckClean(t, v)
			t.Logf("%s: CD-ROM boot to first marker %v, power-off after %v",
				fw, first.Round(time.Millisecond), v.Elapsed().Round(time.Millisecond))
		})
	}
}

// TestBootDisk boots the same hybrid ISO written to a disk: a USB stick
// behind a blank virtio disk (the way the installer boots, with restricted
// user networking) and a virtio disk alone (the way an installed machine
// boots).
func TestBootDisk(t *testing.T) {
	harnessNeedQEMU(t)
	iso := harnessISO(t, harnessMarkers)
	for _, fw := range harnessFirmwares {
		for _, iface := range []string{"usb", "virtio"} {
			t.Run(string(fw)+"-"+iface, func(t *testing.T) {
				cfg := Config{
					Name:     iface + "-" + string(fw),
					Firmware: fw,
					Drives:   []Drive{{Path: iso, Interface: iface, ReadOnly: true, BootOrder: 1}},
					MemoryMB: 256,
				}
				if iface == "usb" {
					blank := filepath.Join(t.TempDir(), "blank.img")
					if err := os.WriteFile(blank, nil, 0o644); err != nil {
						t.Fatal(err)
					}
					if err := os.Truncate(blank, 64<<20); err != nil {
						t.Fatal(err)
					}
					cfg.Drives = append([]Drive{{Path: blank}}, cfg.Drives...)
					cfg.NetDev = "user,id=n,restrict=on"
				}
				v := StartT(t, cfg)
				if _, err := v.Expect(`HARNESS-TWO`, harnessBootTimeout); err != nil {
					t.Fatal(err)
				}
				if err := v.Wait(harnessStepTimeout); err != nil {
					t.Fatalf("Wait for GRUB's halt: %v", err)
				}
				t.Logf("%s %s: boot and power-off in %v", fw, iface, v.Elapsed().Round(time.Millisecond))
			})
		}
	}
}

func TestExpectTimeoutAndKill(t *testing.T) {
	harnessNeedQEMU(t)
	iso := harnessISO(t, harnessLong)
	v := StartT(t, Config{Name: "long", Drives: []Drive{{Path: iso, Media: "cdrom"}}, MemoryMB: 256})
	if _, err := v.Expect(`HARNESS-ONE`, harnessBootTimeout); err != nil {
		t.Fatal(err)
	}
	t.Logf("boot to marker: %v", v.Elapsed().Round(time.Millisecond))

	start := time.Now()
	_, err := v.Expect(`NEVER-PRINTED \d+`, 2*time.Second)
	waited := time.Since(start)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Expect(never printed) = %v, want ErrTimeout", err)
	}
	if waited < 2*time.Second || waited > 20*time.Second {
		t.Errorf("Expect with a 2s timeout returned after %v", waited)
	}
	msg := err.Error()
	for _, want := range []string{`"NEVER-PRINTED \\d+"`, "within 2s", "console lines:", "    | HARNESS-ONE", "long:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("timeout error does not contain %q:\n%s", want, msg)
		}
	}
	t.Logf("timeout error:\n%s", msg)

	// Power cut in the middle of the ten-minute sleep.
	pid := v.cmd.Process.Pid
	dir := v.dir
	start = time.Now()
	if err := v.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	t.Logf("Kill took %v", time.Since(start).Round(time.Millisecond))
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("QEMU pid %d after Kill: signal 0 = %v, want ESRCH", pid, err)
	}
	start = time.Now()
	if _, err := v.Expect(`HARNESS-TWO`, harnessStepTimeout); !errors.Is(err, ErrExited) {
		t.Errorf("Expect after Kill = %v, want ErrExited", err)
	} else if !strings.Contains(err.Error(), "killed by the harness") {
		t.Errorf("Expect after Kill does not say why: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Expect after Kill took %v, want an immediate error", d)
	}
	if err := v.Wait(time.Second); !errors.Is(err, ErrKilled) {
		t.Errorf("Wait after Kill = %v, want ErrKilled", err)
	}
	if err := v.Send("hello"); !errors.Is(err, ErrExited) {
		t.Errorf("Send after Kill = %v, want ErrExited", err)
	}
	if err := v.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
	for i := range 2 {
		if err := v.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary directory %s after Close: %v, want it removed", dir, err)
	}
}

// TestExitEndsExpect: once the guest powers off, a pending Expect fails at
// once instead of running into its timeout.
func TestExitEndsExpect(t *testing.T) {
	harnessNeedQEMU(t)
	iso := harnessISO(t, harnessMarkers)
	v := StartT(t, Config{Name: "exit", Drives: []Drive{{Path: iso, Media: "cdrom"}}, MemoryMB: 256})
	if _, err := v.Expect(`HARNESS-ONE`, harnessBootTimeout); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := v.Expect(`NEVER-PRINTED`, 10*time.Minute)
	if !errors.Is(err, ErrExited) {
		t.Fatalf("Expect(never printed) = %v, want ErrExited", err)
	}
	if d := time.Since(start); d > harnessStepTimeout {
		t.Errorf("Expect took %v after the guest halted", d)
	}
	for _, want := range []string{"status 0", "    | HARNESS-TWO", `"NEVER-PRINTED"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("exit error does not contain %q:\n%v", want, err)
		}
	}
	if err := v.Wait(time.Second); err != nil {
		t.Errorf("Wait after power-off: %v", err)
	}
}

func TestSendAndPrompt(t *testing.T) {
	harnessNeedQEMU(t)
	iso := harnessISO(t, harnessRead)
	for _, fw := range harnessFirmwares {
		t.Run(string(fw), func(t *testing.T) {
			v := StartT(t, Config{Name: "read-" + string(fw), Firmware: fw, Drives: []Drive{{Path: iso, Media: "cdrom"}}, MemoryMB: 256})
			// The prompt has no newline: the unfinished last line must match.
			if _, err := v.Expect(`name\? $`, harnessBootTimeout); err != nil {
				t.Fatal(err)
			}
			if err := v.Send("twinroot"); err != nil {
				t.Fatal(err)
			}
			line, err := v.Expect(`GOT:(.*):END`, harnessStepTimeout)
			if err != nil {
				t.Fatal(err)
			}
			// GRUB's read does not echo the newline, so the answer shares the
			// prompt's line; Expect returns the whole line, consumed part included.
			if got, want := line, "name? twinrootGOT:twinroot:END"; got != want {
				t.Errorf("line after Send = %q, want %q", got, want)
			}
			if err := v.Wait(harnessStepTimeout); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPowerCutAfter(t *testing.T) {
	harnessNeedQEMU(t)
	iso := harnessISO(t, harnessLong)
	v := StartT(t, Config{Name: "powercut", Drives: []Drive{{Path: iso, Media: "cdrom"}}, MemoryMB: 256})
	line, err := v.PowerCutAfter(`HARNESS-(ONE|TWO)`, harnessBootTimeout, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := line, "HARNESS-ONE"; got != want {
		t.Errorf("PowerCutAfter line = %q, want %q", got, want)
	}
	select {
	case <-v.Done():
	default:
		t.Error("QEMU still runs after PowerCutAfter")
	}
}

func TestContextCancelKills(t *testing.T) {
	harnessNeedQEMU(t)
	iso := harnessISO(t, harnessLong)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := Start(ctx, Config{Name: "cancel", Drives: []Drive{{Path: iso, Media: "cdrom"}}, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Expect(`HARNESS-ONE`, harnessBootTimeout); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-v.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("QEMU still runs 30s after its context was canceled")
	}
	if _, err := v.Expect(`x`, time.Second); !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("Expect after cancel = %v, want ErrExited naming the canceled context", err)
	}
}

// TestQEMUDiesWithTestProcess SIGKILLs a process that started QEMU (no
// Cleanup, no context runs) and checks that QEMU dies too.
func TestQEMUDiesWithTestProcess(t *testing.T) {
	harnessNeedQEMU(t)
	iso := harnessISO(t, harnessLong)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHarnessHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "HARNESS_HELPER_ISO="+iso, "HARNESS_HELPER_DIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	pid := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "HARNESS-QEMU-PID "); ok {
			pid, _ = strconv.Atoi(p)
			break
		}
	}
	if pid == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper process did not report a QEMU pid (scan: %v)", sc.Err())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for harnessAlive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("QEMU pid %d still runs 30s after the process that started it was killed", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// harnessAlive reports whether pid runs (a zombie does not count).
func harnessAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// TestHarnessHelperProcess is the child of TestQEMUDiesWithTestProcess.
func TestHarnessHelperProcess(t *testing.T) {
	iso := os.Getenv("HARNESS_HELPER_ISO")
	if iso == "" {
		t.Skip("helper process of TestQEMUDiesWithTestProcess")
	}
	v, err := Start(context.Background(), Config{Name: "orphan", Drives: []Drive{{Path: iso, Media: "cdrom"}}, TempDir: os.Getenv("HARNESS_HELPER_DIR")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Expect(`HARNESS-ONE`, harnessBootTimeout); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("HARNESS-QEMU-PID %d\n", v.cmd.Process.Pid)
	time.Sleep(10 * time.Minute) // the parent kills us
}

// Tests below need no QEMU.

func TestStripper(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"plain", "hello\n", "hello\n"},
		{"crlf", "a\r\nb\n\rc", "a\nb\nc"},
		{"seabios", "\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2)\r\n", "SeaBIOS (version 1.16.2)\n"},
		{"grub clear", "Welcome to GRUB!\r\n\n\x1b[H\x1b[J\x1b[1;1HMARKER\n", "Welcome to GRUB!\n\nMARKER\n"},
		{"ovmf", "\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: loading\r\n", "BdsDxe: loading\n"},
		{"colors", "\x1b[0m\x1b[30m\x1b[47mWelcome\x1b[0m\n", "Welcome\n"},
		{"cursor move ends line", "*twinroot A\x1b[4;2H twinroot B\n", "*twinroot A\n twinroot B\n"},
		{"osc title", "\x1b]0;title\x07after\n", "after\n"},
		{"osc st", "\x1b]0;title\x1b\\after\n", "after\n"},
		{"charset", "\x1b(Bx\x1b)0y\n", "xy\n"},
		{"keypad", "\x1b=\x1b>ok\n", "ok\n"},
		{"controls", "a\x00b\x07c\x08d\te\x7f\n", "abcd\te\n"},
		{"utf-8", "Grüße ✓\n", "Grüße ✓\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s stripper
			if got := string(s.append(nil, []byte(tc.in))); got != tc.want {
				t.Errorf("whole: strip(%q) = %q, want %q", tc.in, got, tc.want)
			}
			// Sequences split across writes, one byte at a time.
			var s2 stripper
			var got []byte
			for i := range len(tc.in) {
				got = s2.append(got, []byte{tc.in[i]})
			}
			if string(got) != tc.want {
				t.Errorf("bytewise: strip(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestConsoleExpect(t *testing.T) {
	c := newConsole("unit", nil, nil)
	c.Write([]byte("boot: slot=a version=1\r\nfoo bar baz\nprompt# "))

	idx, line, err := c.expect(time.Second, `slot=(\w)`)
	if err != nil || idx != 0 || line != "boot: slot=a version=1" {
		t.Errorf("expect(slot) = %d, %q, %v", idx, line, err)
	}
	// The match consumed up to its end; the rest of the line is still there.
	if _, line, err := c.expect(time.Second, `version=1`); err != nil || line != "boot: slot=a version=1" {
		t.Errorf("expect(version) = %q, %v", line, err)
	}
	if _, _, err := c.expect(10*time.Millisecond, `slot=`); !errors.Is(err, ErrTimeout) {
		t.Errorf("expect(consumed text) = %v, want ErrTimeout", err)
	}
	// Leftmost match in the earliest line wins, whatever the pattern order.
	if idx, _, err := c.expect(time.Second, `baz`, `bar`, `prompt`); err != nil || idx != 1 {
		t.Errorf("expectAny(baz, bar, prompt) = %d, %v, want 1", idx, err)
	}
	// The unfinished last line matches.
	if _, line, err := c.expect(time.Second, `# $`); err != nil || line != "prompt# " {
		t.Errorf("expect(prompt) = %q, %v", line, err)
	}
	// Output that arrives while waiting.
	go func() {
		time.Sleep(20 * time.Millisecond)
		c.Write([]byte("ls\r\nfi"))
		time.Sleep(20 * time.Millisecond)
		c.Write([]byte("le.txt\r\n"))
	}()
	if _, line, err := c.expect(5*time.Second, `^file\.txt$`); err != nil || line != "file.txt" {
		t.Errorf("expect(file.txt) = %q, %v", line, err)
	}
	if _, _, err := c.expect(time.Second, `(`); err == nil {
		t.Error("expect with a bad pattern succeeded")
	}

	c.end("QEMU exited with status 0")
	start := time.Now()
	_, _, err = c.expect(time.Minute, `a`, `b`)
	if !errors.Is(err, ErrExited) || time.Since(start) > time.Second {
		t.Fatalf("expect after end = %v after %v, want ErrExited at once", err, time.Since(start))
	}
	for _, want := range []string{`any of "a", "b"`, "status 0", "last 4 console lines:", "    | prompt# ls", "    | file.txt"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
}

func TestConsoleTailLimit(t *testing.T) {
	c := newConsole("unit", nil, nil)
	for i := range 100 {
		fmt.Fprintf(c, "line %d\n", i)
	}
	_, _, err := c.expect(time.Millisecond, `never`)
	msg := err.Error()
	if !strings.Contains(msg, "last 30 console lines:") || !strings.Contains(msg, "| line 70\n") ||
		strings.Contains(msg, "| line 69\n") || !strings.HasSuffix(msg, "| line 99") {
		t.Errorf("timeout error does not quote exactly lines 70-99:\n%s", msg)
	}
}

func TestConfigArgs(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk,1.img")
	iso := filepath.Join(dir, "x.iso")
	faults := filepath.Join(dir, "faults.cfg")
	for _, p := range []string{disk, iso, faults} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{
		Firmware: UEFI,
		Drives: []Drive{
			{Path: iso, Media: "cdrom", BootOrder: 1},
			{Path: disk},
			{Path: disk, Interface: "usb", Snapshot: true},
			{Path: disk, Interface: "usb"},
			{Path: disk, Interface: "ide"},
			{Path: disk, Blkdebug: faults},
		},
		NetDev: "user,restrict=on,guestfwd=tcp:10.0.2.100:9000-tcp:127.0.0.1:9310",
	}.withDefaults()
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	args, err := cfg.args("/tmp/vars.fd")
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{
		"-name x.iso ",
		"-machine pc -accel tcg -m 512 -smp 1 ",
		"-monitor none ",
		"-nic none ",
		"-drive if=pflash,format=raw,unit=0,readonly=on,file=" + DefaultOVMFCode + " ",
		"file=/tmp/vars.fd ",
		"-drive if=none,id=drive0,format=raw,file=" + iso + ",readonly=on -device ide-cd,drive=drive0,bus=ide.0,unit=0,bootindex=1 ",
		"-drive if=none,id=drive1,format=raw,file=" + strings.ReplaceAll(disk, ",", ",,") + " -device virtio-blk-pci,drive=drive1 ",
		"snapshot=on -device usb-storage,bus=xhci.0,removable=on,drive=drive2 ",
		"-device ide-hd,drive=drive4,bus=ide.0,unit=1",
		"-drive if=none,id=drive5,format=raw,file.driver=blkdebug,file.config=" + faults + ",file.image.filename=" + strings.ReplaceAll(disk, ",", ",,") + " -device virtio-blk-pci,drive=drive5 ",
		"-netdev user,restrict=on,guestfwd=tcp:10.0.2.100:9000-tcp:127.0.0.1:9310,id=net0 -device virtio-net-pci,romfile=,netdev=net0",
	} {
		if !strings.Contains(line+" ", want) {
			t.Errorf("command line lacks %q:\n%s", want, line)
		}
	}
	if n := strings.Count(line, "qemu-xhci"); n != 1 {
		t.Errorf("command line has %d xhci controllers, want 1:\n%s", n, line)
	}
	if slices.Contains(args, "-no-reboot") {
		t.Errorf("-no-reboot without NoReboot:\n%s", line)
	}

	direct := Config{Kernel: "/k/vmlinuz", Initrd: "/k/initrd.img", Append: "console=ttyS0 twinroot.slot=a,b", NoReboot: true}.withDefaults()
	args, err = direct.args("")
	if err != nil {
		t.Fatal(err)
	}
	line = strings.Join(args, " ")
	for _, want := range []string{"-name vmlinuz ", "-kernel /k/vmlinuz -initrd /k/initrd.img -append console=ttyS0 twinroot.slot=a,b -no-reboot"} {
		if !strings.Contains(line, want) {
			t.Errorf("command line lacks %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, "pflash") {
		t.Errorf("BIOS command line loads OVMF:\n%s", line)
	}
}

func TestConfigRefused(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d := []Drive{{Path: disk}}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"nothing to boot", Config{}, "nothing to boot"},
		{"firmware", Config{Firmware: "coreboot", Drives: d}, "unknown firmware"},
		{"missing drive", Config{Drives: []Drive{{Path: filepath.Join(dir, "nope")}}}, "no such file"},
		{"virtio cdrom", Config{Drives: []Drive{{Path: disk, Media: "cdrom", Interface: "virtio"}}}, "needs the ide interface"},
		{"usb cdrom", Config{Drives: []Drive{{Path: disk, Media: "cdrom", Interface: "usb"}}}, "needs the ide interface"},
		{"interface", Config{Drives: []Drive{{Path: disk, Interface: "scsi"}}}, "unknown interface"},
		{"blkdebug config", Config{Drives: []Drive{{Path: disk, Blkdebug: filepath.Join(dir, "nope.cfg")}}}, "blkdebug config"},
		{"five ide", Config{Drives: slices.Repeat([]Drive{{Path: disk, Interface: "ide"}}, 5)}, "room for 4"},
		{"initrd alone", Config{Drives: d, Initrd: disk}, "without a kernel"},
		{"unrestricted", Config{Drives: d, NetDev: "user,id=n"}, "restrict=on is required"},
		{"restrict off", Config{Drives: d, NetDev: "user,id=n,restrict=off"}, "restrict=on is required"},
		{"tap", Config{Drives: d, NetDev: "tap,id=n,restrict=on"}, "only user networking"},
		{"hostfwd any", Config{Drives: d, NetDev: "user,restrict=on,hostfwd=tcp::2222-:22"}, "hostfwd must listen on 127.0.0.1"},
		{"guestfwd away", Config{Drives: d, NetDev: "user,restrict=on,guestfwd=tcp:10.0.2.100:80-tcp:192.0.2.1:80"}, "guestfwd must lead to"},
		{"guestfwd cmd", Config{Drives: d, NetDev: "user,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:nc example.org 80"}, "guestfwd must lead to"},
		{"extra netdev", Config{Drives: d, ExtraArgs: []string{"-netdev", "user,id=x"}}, "Config.NetDev"},
		{"extra nic", Config{Drives: d, ExtraArgs: []string{"-nic", "user"}}, "Config.NetDev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Start(context.Background(), tc.cfg)
			if err == nil {
				v.Close()
				t.Fatalf("Start accepted %+v", tc.cfg)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	ok := Config{Drives: d, NetDev: "user,id=n,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22,guestfwd=tcp:10.0.2.100:9000-tcp:127.0.0.1:9310"}.withDefaults()
	if err := ok.validate(); err != nil {
		t.Errorf("validate(%q) = %v, want nil", ok.NetDev, err)
	}
}
