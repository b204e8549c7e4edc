package partition

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func sparseDisk(t *testing.T, size int64) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPlan(t *testing.T) {
	l, err := Plan(8*GiB, 2*GiB)
	if err != nil {
		t.Fatal(err)
	}
	want := []Part{
		{1, LabelBIOS, 1 * MiB, 1 * MiB},
		{2, LabelESP, 2 * MiB, 128 * MiB},
		{3, LabelA, 130 * MiB, 2 * GiB},
		{4, LabelB, 130*MiB + 2*GiB, 2 * GiB},
		{5, LabelData, 130*MiB + 4*GiB, 8*GiB - 1*MiB - (130*MiB + 4*GiB)},
	}
	for i, p := range l.Parts() {
		if p != want[i] {
			t.Errorf("part %d = %+v, want %+v", i+1, p, want[i])
		}
		if p.Start%MiB != 0 || p.Size%MiB != 0 {
			t.Errorf("part %d not MiB aligned: %+v", i+1, p)
		}
	}
	if got := l.Slot(B); got != l.B {
		t.Errorf("Slot(B) = %+v", got)
	}
}

func TestPlanErrors(t *testing.T) {
	for _, tc := range []struct {
		name           string
		disk, slot     int64
		wantTooSmall   bool
		wantSubstrings string
	}{
		{"disk too small", 1 * GiB, 1 * GiB, true, "need at least"},
		{"slot too small", 8 * GiB, 1 * MiB, false, "below the minimum"},
		{"exactly minimum", MinDiskSize(64 * MiB), 64 * MiB, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Plan(tc.disk, tc.slot)
			if tc.wantSubstrings == "" {
				if err != nil {
					t.Fatalf("Plan: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantSubstrings) {
				t.Fatalf("Plan err = %v, want it to contain %q", err, tc.wantSubstrings)
			}
			if got := errors.Is(err, ErrDiskTooSmall); got != tc.wantTooSmall {
				t.Errorf("errors.Is(err, ErrDiskTooSmall) = %v, want %v", got, tc.wantTooSmall)
			}
		})
	}
}

func TestWriteReadSgdisk(t *testing.T) {
	size := MinDiskSize(64*MiB) + 37*SectorSize // not MiB aligned on purpose
	f := sparseDisk(t, size)
	l, err := Plan(size, 64*MiB)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(f, l); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sgdisk", "-v", f.Name()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Fatalf("sgdisk -v: %v\n%s", err, out)
	}
	out, err = exec.Command("sgdisk", "-p", f.Name()).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk -p: %v\n%s", err, out)
	}
	for _, want := range []string{"EF02  twinroot-bios", "EF00  twinroot-esp", "8304  twinroot-a", "8304  twinroot-b", "8300  twinroot-data"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("sgdisk -p lacks %q:\n%s", want, out)
		}
	}
	got, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if got != l {
		t.Errorf("Read = %+v, want %+v", got, l)
	}
	if !HasData(f) {
		t.Error("HasData = false after Write")
	}
}

func TestReadForeignDisk(t *testing.T) {
	f := sparseDisk(t, 256*MiB)
	if err := Write(f, Layout{}); err == nil {
		t.Fatal("Write of a layout for another disk size succeeded")
	}
	if _, err := Read(f); !errors.Is(err, ErrNotTwinroot) {
		t.Errorf("Read(blank) = %v, want ErrNotTwinroot", err)
	}
	out, err := exec.Command("sgdisk", "-n", "1:0:+10M", "-c", "1:data", f.Name()).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk: %v\n%s", err, out)
	}
	if _, err := Read(f); !errors.Is(err, ErrNotTwinroot) || !strings.Contains(err.Error(), `"data"`) {
		t.Errorf("Read(foreign GPT) = %v, want ErrNotTwinroot naming the partition", err)
	}
	if HasData(f) {
		t.Error("HasData(foreign) = true")
	}
}

func TestParseSlot(t *testing.T) {
	for in, want := range map[string]Slot{"a": A, "B": B, " b\n": B} {
		if got, err := ParseSlot(in); err != nil || got != want {
			t.Errorf("ParseSlot(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseSlot("c"); err == nil {
		t.Error("ParseSlot(c) succeeded")
	}
	if A.Other() != B || B.Other() != A {
		t.Error("Other is wrong")
	}
}
