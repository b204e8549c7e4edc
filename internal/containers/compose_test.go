package containers

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestUnitsGolden pins the compose → Quadlet translation of a bundle that
// uses every supported key.
func TestUnitsGolden(t *testing.T) {
	b, err := Load(context.Background(), "testdata/bundle")
	if err != nil {
		t.Fatal(err)
	}
	for i := range b.Services {
		b.Services[i].ImageID = "sha256:" + strings.Repeat(string(rune('a'+i)), 64)
	}
	files, err := b.Units("/usr/bin/updater")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range b.Services {
		if len(s.Env) > 0 {
			files[s.Name+".env"] = Template(s.Env)
		}
	}
	want, _ := filepath.Glob("testdata/golden/*")
	if !*update && len(want) != len(files) {
		t.Errorf("%d files generated, %d golden files", len(files), len(want))
	}
	for n, got := range files {
		path := filepath.Join("testdata/golden", n)
		if *update {
			os.MkdirAll("testdata/golden", 0o755)
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		w, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v (run go test -update)", n, err)
			continue
		}
		if string(w) != string(got) {
			t.Errorf("%s differs from its golden file:\n--- got\n%s\n--- want\n%s", n, got, w)
		}
	}
	web, _ := b.Service("web")
	if got, want := strings.Join(web.Secrets, ","), "api_token"; got != want {
		t.Errorf("web's secrets = %q, want %q", got, want)
	}
}

// TestRefused: every bundle twinroot cannot honour is refused at load, in
// one line that names the service and the key.
func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		name, compose string
		files         map[string]string
		want          string
	}{
		{"syntax", "services:\n  web:\n    image: [unclosed\n", nil, "compose.yaml:"},
		{"no services", "volumes:\n  v: {}\n", nil, "no services"},
		// compose-go took 25 s of CPU to refuse the merge: found by FuzzLoad.
		{"anchor merged into itself", "x-base: &base\n  image: a\n  <<: *base\nservices:\n  web: *base\n", nil,
			"compose.yaml: line 3: alias *base is inside the node its anchor names"},
		{"anchor inside itself", "services: &s\n  web:\n    image: a\n    labels: {x: *s}\n", nil,
			"compose.yaml: line 4: alias *s is inside the node its anchor names"},
		{"anchor inside itself, DEL in the key", "0: &base\n 1\x7f<<: *base\n", nil,
			"compose.yaml: line 2: alias *base is inside the node its anchor names"},
		{"unsupported key", "services:\n  web:\n    image: a\n    deploy: {replicas: 2}\n", nil, "service web: key deploy is not supported"},
		{"unsupported nested key", "services:\n  web:\n    image: a\n    healthcheck: {test: [CMD, x], start_interval: 1s}\n", nil,
			"service web: key healthcheck.start_interval is not supported"},
		{"top-level key", "services:\n  web:\n    image: a\nnetworks:\n  n: {}\n", nil, "key networks is not supported"},
		{"cycle", "services:\n  a:\n    image: a\n    depends_on: [b]\n  b:\n    image: b\n    depends_on: [c]\n  c:\n    image: c\n    depends_on: [a]\n", nil,
			"dependency cycle: a -> b -> c -> a"},
		{"unknown dependency", "services:\n  web:\n    image: a\n    depends_on: [db]\n", nil,
			"service web: depends_on names db, which is not a service of the bundle"},
		{"healthy without healthcheck", "services:\n  web:\n    image: a\n    depends_on: {db: {condition: service_healthy}}\n  db:\n    image: b\n", nil,
			"db has no healthcheck"},
		{"completed condition", "services:\n  web:\n    image: a\n    depends_on: {db: {condition: service_completed_successfully}}\n  db:\n    image: b\n", nil,
			"condition service_completed_successfully is not supported"},
		{"bind mount", "services:\n  web:\n    image: a\n    volumes: [\"/srv:/srv\"]\n", nil, "service web: volumes: /srv is a bind mount"},
		{"undeclared volume", "services:\n  web:\n    image: a\n    volumes: [\"data:/data\"]\n", nil, "volume data is not declared"},
		{"missing env_file", "services:\n  web:\n    image: a\n    env_file: web.env\n", nil, "service web: env_file web.env"},
		{"bad template", "services:\n  web:\n    image: a\n    environment: {A: \"${1x}\"}\n", nil, "${1x} is not ${NAME}"},
		{"host interpolation", "services:\n  web:\n    image: a\n    command: [echo, \"$HOME\"]\n", nil, "service web: command: \"$H...\" would be filled in from the build host"},
		{"no image", "services:\n  web:\n    command: [x]\n", nil, "service web: needs image or build"},
		{"line break in a unit value", "services:\n  web:\n    image: a\n    user: \"1\\nExecStartPre=/bin/false\"\n", nil,
			"service web: user: \"1\\nExecStartPre=/bin/false\" has a line break"},
		{"backslash ending a unit value", "services:\n  web:\n    image: a\n    cap_drop: [\"ALL\\\\\"]\n", nil, "service web: cap_drop: \"ALL\\\\\" ends in a backslash"},
		{"line break in the environment", "services:\n  web:\n    image: a\n    environment: {A: \"x\\nB=y\"}\n", nil, "environment: A: the value has a line break"},
		{"white space ending a value", "services:\n  web:\n    image: a\n    environment: {A: \"x \"}\n", nil, "environment: A: the value ends in white space"},
		{"bad variable name", "services:\n  web:\n    image: a\n    environment: {\"1B\": y}\n", nil, "environment: \"1B\" is not a variable name"},
		{"bad name", "services:\n  Web:\n    image: a\n", nil, "service Web: name must be lower case"},
		{"missing Dockerfile", "services:\n  web:\n    build: ./web\n", map[string]string{"web/README": "x"}, "service web: build: no Dockerfile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ComposeFile), []byte(tc.compose), 0o644); err != nil {
				t.Fatal(err)
			}
			for n, c := range tc.files {
				os.MkdirAll(filepath.Dir(filepath.Join(dir, n)), 0o755)
				os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644)
			}
			_, err := Load(context.Background(), dir)
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("Load = %v, want ErrRefused", err)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("Load = %q, want one line with %q", msg, tc.want)
			}
		})
	}
}

// TestPrepareFindsArchives: images are found in the bundle's archives by
// the name they were saved under, and a missing one is refused with the
// names that are there.
func TestPrepareFindsArchives(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ComposeFile), []byte("services:\n  web:\n    image: web:2\n  db:\n    image: localhost/db:1\n"), 0o644)
	img, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("docker.io/library/web:2")
	if err := tarball.WriteToFile(filepath.Join(dir, "web.tar"), tag, img); err != nil {
		t.Fatal(err)
	}
	b, err := Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Prepare(context.Background(), Podman{})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "service db: image localhost/db:1 is in no archive") ||
		!strings.Contains(err.Error(), "web.tar: docker.io/library/web:2") {
		t.Fatalf("Prepare without db's archive = %v", err)
	}
	tag2, _ := name.NewTag("localhost/db:1")
	if err := tarball.WriteToFile(filepath.Join(dir, "db.tar"), tag2, img); err != nil {
		t.Fatal(err)
	}
	p, err := b.Prepare(context.Background(), Podman{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	id, _ := img.ConfigName()
	for _, s := range p.Services {
		if s.ImageID != id.String() {
			t.Errorf("service %s: image ID %s, want %s", s.Name, s.ImageID, id)
		}
	}
}

// TestQuadletErrors: what podman 5.4's quadlet -dryrun printed here for a
// unit with an unknown key and one without an image, beside its usual
// lines and warnings.
func TestQuadletErrors(t *testing.T) {
	stderr := `quadlet-generator[16802]: Loading source unit file /usr/share/containers/systemd/bad.container
quadlet-generator[16802]: Warning: bad.container specifies the image "abc" which not a fully qualified image name.
quadlet-generator[16802]: converting "bad.container": unsupported key 'FooBar' in group 'Container' in /usr/share/containers/systemd/bad.container
converting "noimg.container": no Image or Rootfs key specified
`
	want := `converting "bad.container": unsupported key 'FooBar' in group 'Container' in /usr/share/containers/systemd/bad.container; converting "noimg.container": no Image or Rootfs key specified`
	if got := quadletErrors(stderr); got != want {
		t.Errorf("quadletErrors = %q, want %q", got, want)
	}
	if got := quadletErrors("quadlet-generator[1]: Loading source unit file /x.container\n"); got != "" {
		t.Errorf("quadletErrors of a clean run = %q", got)
	}
}
