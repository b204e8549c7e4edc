package watchdog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A regular file stands in for the device here: it records what is
// written, which is the protocol (a keepalive is any write, 'V' before the
// close disarms). The QEMU scenario TestScenarioHangFallsBack drives a
// real watchdog (i6300esb).
func fakeDevice(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func written(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDisarmWritesTheMagicCharacterLast(t *testing.T) {
	dev := fakeDevice(t)
	d, err := Take(dev, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got := written(t, dev); got != "." {
		t.Fatalf("after Take: %q written, want one keepalive", got)
	}
	if err := d.Disarm(); err != nil {
		t.Fatal(err)
	}
	if got := written(t, dev); !strings.HasSuffix(got, "V") || strings.Count(got, "V") != 1 {
		t.Fatalf("after Disarm: %q written, want keepalives and one V at the end", got)
	}
}

func TestReleaseLeavesItArmed(t *testing.T) {
	dev := fakeDevice(t)
	d, err := Take(dev, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Release(); err != nil {
		t.Fatal(err)
	}
	if got := written(t, dev); strings.Contains(got, "V") || got == "" {
		t.Fatalf("after Release: %q written, want keepalives and no V", got)
	}
}

func TestArmLeavesItArmed(t *testing.T) {
	dev := fakeDevice(t)
	// The timeout ioctl fails on a file; Arm arms all the same.
	if err := Arm(dev, DefaultTimeout); err != nil {
		t.Fatal(err)
	}
	if got := written(t, dev); got != "." {
		t.Fatalf("after Arm: %q written, want one keepalive and no V", got)
	}
}

func TestNoWatchdog(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "watchdog")
	if _, err := Take(dev, time.Minute); !errors.Is(err, ErrNone) {
		t.Errorf("Take of a missing device: %v, want ErrNone", err)
	}
	if err := Arm(dev, DefaultTimeout); !errors.Is(err, ErrNone) {
		t.Errorf("Arm of a missing device: %v, want ErrNone", err)
	}
}
