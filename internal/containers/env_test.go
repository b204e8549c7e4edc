package containers

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func renderer(t *testing.T, template string) Renderer {
	t.Helper()
	dir := t.TempDir()
	r := Renderer{Templates: filepath.Join(dir, "env"), Data: filepath.Join(dir, "data"), Runtime: filepath.Join(dir, "run", "twinroot", "containers")}
	os.MkdirAll(r.Templates, 0o755)
	if err := os.WriteFile(filepath.Join(r.Templates, "web.env"), []byte(template), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRenderValuesDefaultsAndSecrets(t *testing.T) {
	r := renderer(t, "PORT=${PORT:-8080}\nNAME=${NAME}\nTOKEN=${secret:api_token}\nPRICE=$$5\nPLAIN=a b\n")
	os.MkdirAll(r.Data, 0o755)
	os.WriteFile(filepath.Join(r.Data, "values.env"), []byte("# this device\nNAME=kiosk-7\n"), 0o600)
	path, err := r.Render("web")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(path)
	secret, err := os.ReadFile(filepath.Join(r.Data, "secrets", "api_token"))
	if err != nil {
		t.Fatal(err)
	}
	want := "PORT=8080\nNAME=kiosk-7\nTOKEN=" + strings.TrimSpace(string(secret)) + "\nPRICE=$5\nPLAIN=a b\n"
	if string(first) != want {
		t.Errorf("rendered\n%s\nwant\n%s", first, want)
	}
	if len(strings.TrimSpace(string(secret))) != 64 {
		t.Errorf("secret %q is not 32 bytes in hex", secret)
	}
	for p, mode := range map[string]os.FileMode{path: 0o600, filepath.Join(r.Data, "secrets", "api_token"): 0o600,
		filepath.Join(r.Data, "secrets"): 0o700 | os.ModeDir, r.Runtime: 0o700 | os.ModeDir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode(), err, mode)
		}
	}
	// A start after /run was cleaned renders the same file, same secret.
	if err := os.RemoveAll(filepath.Dir(r.Runtime)); err != nil {
		t.Fatal(err)
	}
	path, err = r.Render("web")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(path); string(again) != string(first) {
		t.Errorf("second render\n%s\nwant the first\n%s", again, first)
	}
}

func TestRenderMissingValue(t *testing.T) {
	r := renderer(t, "NAME=${NAME}\n")
	_, err := r.Render("web")
	if err == nil || !strings.Contains(err.Error(), "NAME needs a value for NAME: set NAME=... in "+filepath.Join(r.Data, "values.env")) {
		t.Errorf("Render = %v, want it to name the missing value and the file", err)
	}
	if _, err := os.Stat(filepath.Join(r.Runtime, "web.env")); err == nil {
		t.Error("an env file was written after a failed render")
	}
	if _, err := r.Render("db"); err == nil || !strings.Contains(err.Error(), "service db has no env template") {
		t.Errorf("Render of a service without a template = %v", err)
	}
}

// TestSecretOnceUnderRace: services starting at the same time that share a
// secret all get the one that was kept.
func TestSecretOnceUnderRace(t *testing.T) {
	r := renderer(t, "TOKEN=${secret:shared}\n")
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := r.secret("shared")
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		}()
	}
	wg.Wait()
	kept, _ := os.ReadFile(filepath.Join(r.Data, "secrets", "shared"))
	for i, v := range got {
		if v != strings.TrimSpace(string(kept)) {
			t.Errorf("caller %d got %q, the kept secret is %q", i, v, kept)
		}
	}
}
