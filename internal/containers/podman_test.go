package containers

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twinroot/twinroot/internal/testenv"
)

// hostPodman is the build host's podman as this machine needs it: no
// cgroups v2, so runc, and explicit ulimits.
var hostPodman = Podman{Args: []string{"--runtime", "runc"}}

// TestBuildIsOfflineAndReproducible builds a service from its Dockerfile
// twice with the build host's real podman: no registry is asked, and the
// same context gives the same image ID, so an unchanged service costs a
// release nothing.
func TestBuildIsOfflineAndReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("runs podman build")
	}
	testenv.NeedRoot(t)
	testenv.Need(t, "podman")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "app", "files"), 0o755)
	os.WriteFile(filepath.Join(dir, "app", "files", "hello"), []byte("hello\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "app", "Dockerfile"), []byte("FROM scratch\nCOPY files/ /srv/\n"), 0o644)
	os.WriteFile(filepath.Join(dir, ComposeFile), []byte("services:\n  app:\n    build: ./app\n    command: [/srv/hello]\n"), 0o644)
	var ids []string
	for range 2 {
		b, err := Load(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		p, err := b.Prepare(context.Background(), hostPodman)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.Services[0].ImageID)
		p.Close()
		os.Chtimes(filepath.Join(dir, "app", "files", "hello"), time.Now(), time.Now())
	}
	if ids[0] != ids[1] || len(ids[0]) != len("sha256:")+64 {
		t.Errorf("two builds of one context gave image IDs %q and %q, want one ID", ids[0], ids[1])
	}
	// A Dockerfile that needs a registry is refused, not pulled.
	os.WriteFile(filepath.Join(dir, "app", "Dockerfile"), []byte("FROM docker.io/library/busybox:latest\n"), 0o644)
	b, err := Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := b.Prepare(context.Background(), hostPodman); err == nil {
		p.Close()
		t.Fatal("a build FROM a registry image passed offline")
	} else {
		t.Logf("refused: %v", err)
	}
}
