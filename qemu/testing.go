package qemu

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// StartT starts a guest for a test. QEMU dies with the test's context and
// is closed by t.Cleanup. The cleaned console goes to a file under
// t.TempDir() (and to cfg.Log, if set), and the cleanup logs the run time.
// When the test has failed, the console file is copied to a file that
// survives the test (t.TempDir is removed) and its path is logged.
func StartT(t testing.TB, cfg Config) *VM {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = cfg.withDefaults().Name
	}
	if cfg.TempDir == "" {
		cfg.TempDir = t.TempDir()
	}
	logPath := filepath.Join(t.TempDir(), fileSafe(cfg.Name)+".console.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("qemu %s: console log: %v", cfg.Name, err)
	}
	if cfg.Log != nil {
		cfg.Log = io.MultiWriter(f, cfg.Log)
	} else {
		cfg.Log = f
	}
	v, err := Start(t.Context(), cfg)
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Errorf("qemu %s: close: %v", v.name, err)
		}
		f.Close()
		if !t.Failed() {
			t.Logf("qemu %s: ran %v", v.name, v.Elapsed().Round(10*time.Millisecond))
			return
		}
		kept, err := keepLog(logPath, v.name)
		if err != nil {
			t.Logf("qemu %s: ran %v; console log %s (removed with the test's temporary directory: %v)",
				v.name, v.Elapsed().Round(10*time.Millisecond), logPath, err)
			return
		}
		t.Logf("qemu %s: ran %v; console log %s", v.name, v.Elapsed().Round(10*time.Millisecond), kept)
	})
	return v
}

// keepLog copies a console log out of the test's temporary directory.
func keepLog(path, name string) (string, error) {
	out, err := os.CreateTemp("", "twinroot-qemu-"+fileSafe(name)+"-*.log")
	if err != nil {
		return "", err
	}
	out.Close()
	if err := copyFile(out.Name(), path); err != nil {
		os.Remove(out.Name())
		return "", err
	}
	return out.Name(), nil
}
