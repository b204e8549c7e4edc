package harness

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/release"
)

// TestBuildOutput reads back what updater build prints with -o json (the
// release.BuildResult it marshals), and refuses one without a manifest.
func TestBuildOutput(t *testing.T) {
	want := release.BuildResult{Dir: "out", Chunks: 7, Manifest: &manifest.Manifest{
		Version: "1.0.0", Serial: 1,
		Image: manifest.Image{Key: "slot.img.zst", Size: 4096, SHA256: "ab", CompressedSize: 100},
	}}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := BuildOutput(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("BuildOutput (-want +got):\n%s", diff)
	}
	if _, err := BuildOutput([]byte(`{"chunks": 3}`)); err == nil {
		t.Error("BuildOutput of a result without a manifest = nil error")
	}
	if _, err := BuildOutput([]byte("built 1.0.0")); err == nil {
		t.Error("BuildOutput of text = nil error")
	}
}

func TestPublishOutput(t *testing.T) {
	got, err := PublishOutput([]byte(`{"objects": ["c/1.0.0/slot.img.zst"], "bytes": 42}`))
	if err != nil {
		t.Fatal(err)
	}
	if got.Bytes != 42 || len(got.Objects) != 1 {
		t.Errorf("PublishOutput = %+v, want 42 bytes in one object", got)
	}
}
