package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// testSystem is a system whose files live under t.TempDir() and whose
// reboot(2) only records the command.
func testSystem(t *testing.T, cmdline, variant string) (*system, *bytes.Buffer, *[]int) {
	t.Helper()
	dir := t.TempDir()
	out := &bytes.Buffer{}
	var reboots []int
	s := &system{
		cmdline: filepath.Join(dir, "cmdline"),
		etc:     filepath.Join(dir, "etc"),
		updater: filepath.Join(dir, "updater"),
		self:    "/init",
		out:     out,
		reboot: func(cmd int) error {
			reboots = append(reboots, cmd)
			return nil
		},
	}
	write(t, s.cmdline, cmdline)
	write(t, filepath.Join(s.etc, "version"), "1.2.3\n")
	write(t, filepath.Join(s.etc, "variant"), variant+"\n")
	return s, out, &reboots
}

func write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

func lines(b *bytes.Buffer) []string {
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}

func TestSlot(t *testing.T) {
	for _, tc := range []struct{ cmdline, want string }{
		{"BOOT_IMAGE=/boot/vmlinuz console=ttyS0 twinroot.slot=b panic=5\n", "b"},
		{"twinroot.slot=a", "a"},
		{"console=ttyS0 twinroot.slotx=a", "none"},
		{"twinroot.slot=", "none"},
		{"", "none"},
	} {
		s, _, _ := testSystem(t, tc.cmdline, "ok")
		if got := s.slot(); got != tc.want {
			t.Errorf("slot() with cmdline %q = %q, want %q", tc.cmdline, got, tc.want)
		}
	}
	s, _, _ := testSystem(t, "", "ok")
	s.cmdline = filepath.Join(t.TempDir(), "missing")
	if got, want := s.slot(), "none"; got != want {
		t.Errorf("slot() without a cmdline file = %q, want %q", got, want)
	}
}

func TestHealth(t *testing.T) {
	for _, tc := range []struct {
		variant  string
		wantCode int
		wantLine string
	}{
		{"ok", 0, "twinroot-init: health ok"},
		{"unhealthy", 1, "twinroot-init: health failed"},
	} {
		s, out, _ := testSystem(t, "", tc.variant)
		if got := s.health(); got != tc.wantCode {
			t.Errorf("health() for %s = %d, want %d", tc.variant, got, tc.wantCode)
		}
		if got := strings.TrimSpace(out.String()); got != tc.wantLine {
			t.Errorf("health() for %s printed %q, want %q", tc.variant, got, tc.wantLine)
		}
	}
}

func TestStart(t *testing.T) {
	t.Run("panic", func(t *testing.T) {
		s, out, _ := testSystem(t, "twinroot.slot=a", "panic")
		write(t, s.updater, "#!/bin/sh\necho must not run\n")
		if s.start() {
			t.Error("start() = true for the panic variant, want false")
		}
		want := []string{
			"twinroot-init: slot=a version=1.2.3 variant=panic",
			"twinroot-init: panic variant, exiting",
		}
		if diff := cmp.Diff(want, lines(out)); diff != "" {
			t.Errorf("console (-want +got):\n%s", diff)
		}
	})
	t.Run("no updater", func(t *testing.T) {
		s, out, _ := testSystem(t, "twinroot.slot=b", "ok")
		if !s.start() {
			t.Error("start() = false, want true")
		}
		want := []string{"twinroot-init: slot=b version=1.2.3 variant=ok"}
		if diff := cmp.Diff(want, lines(out)); diff != "" {
			t.Errorf("console (-want +got):\n%s", diff)
		}
	})
	t.Run("updater", func(t *testing.T) {
		s, out, _ := testSystem(t, "", "unhealthy")
		write(t, s.updater, "#!/bin/sh\nfor a in \"$@\"; do echo \"arg: $a\"; done\nexit 4\n")
		if !s.start() {
			t.Error("start() = false, want true")
		}
		want := []string{
			"twinroot-init: slot=none version=1.2.3 variant=unhealthy",
			"arg: boot",
			"arg: --health-cmd",
			"arg: /init health",
			"arg: --health-timeout",
			"arg: 5s",
			"twinroot-init: updater boot exit=4",
		}
		if diff := cmp.Diff(want, lines(out)); diff != "" {
			t.Errorf("console (-want +got):\n%s", diff)
		}
	})
}

func TestServe(t *testing.T) {
	s, out, reboots := testSystem(t, "", "ok")
	write(t, s.updater, "#!/bin/sh\necho \"updater $# args: $*\"\nexit 7\n")
	s.in = strings.NewReader("run status -o json\r\n\n  \nrun check --note 'two words'\nbogus\nreboot\npoweroff\n")
	if err := s.serve(); !errors.Is(err, io.EOF) {
		t.Errorf("serve() = %v, want io.EOF at the end of the console", err)
	}
	want := []string{
		"twinroot-init: ready",
		"updater 3 args: status -o json",
		"twinroot-init: run exit=7",
		"updater 3 args: check --note two words",
		"twinroot-init: run exit=7",
		"twinroot-init: unknown command",
	}
	if diff := cmp.Diff(want, lines(out)); diff != "" {
		t.Errorf("console (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{unix.LINUX_REBOOT_CMD_RESTART, unix.LINUX_REBOOT_CMD_POWER_OFF}, *reboots); diff != "" {
		t.Errorf("reboot(2) calls (-want +got):\n%s", diff)
	}
}

func TestRunWithoutUpdater(t *testing.T) {
	s, out, _ := testSystem(t, "", "ok")
	if got, want := s.run("status"), 127; got != want {
		t.Errorf("run(status) without an updater = %d, want %d", got, want)
	}
	if !strings.Contains(out.String(), "no such file") {
		t.Errorf("run(status) without an updater printed %q, want the exec error", out.String())
	}
}

func TestWaitDisks(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"loop0", "sr0", "vdb", "sda", "nvme0n1", "vda"} {
		write(t, filepath.Join(dir, n, "dev"), "")
	}
	if diff := cmp.Diff([]string{"nvme0n1", "sda", "vda", "vdb"}, waitDisks(dir, time.Second)); diff != "" {
		t.Errorf("waitDisks (-want +got):\n%s", diff)
	}

	empty := t.TempDir()
	write(t, filepath.Join(empty, "loop0", "dev"), "")
	start := time.Now()
	if got := waitDisks(empty, 200*time.Millisecond); len(got) != 0 {
		t.Errorf("waitDisks without disks = %v, want none", got)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("waitDisks without disks returned after %v, before its timeout", d)
	}
}

func TestPartitionByLabel(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "vda", "uevent"), "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n")
	write(t, filepath.Join(dir, "vda3", "uevent"), "MAJOR=254\nMINOR=3\nDEVNAME=vda3\nDEVTYPE=partition\nPARTN=3\nPARTNAME=twinroot-a\n")
	write(t, filepath.Join(dir, "vda4", "uevent"), "MAJOR=254\nMINOR=4\nDEVNAME=vda4\nDEVTYPE=partition\nPARTN=4\nPARTNAME=twinroot-b\n")
	for label, want := range map[string]string{"twinroot-a": "vda3", "twinroot-b": "vda4", "twinroot-c": ""} {
		got, err := partitionByLabel(dir, label)
		if err != nil || got != want {
			t.Errorf("partitionByLabel(%s) = %q, %v, want %q", label, got, err, want)
		}
	}
}

func TestMountDataAbsent(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "vda3", "uevent"), "DEVTYPE=partition\nPARTN=3\nPARTNAME=twinroot-a\n")
	msg, err := mountData(dir, filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatalf("mountData without a data partition: %v", err)
	}
	if !strings.Contains(msg, "no data partition (twinroot-data)") {
		t.Errorf("mountData without a data partition = %q, want it to say so", msg)
	}
}
