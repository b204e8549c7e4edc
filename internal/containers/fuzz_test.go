package containers

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/twinroot/twinroot/internal/testfuzz"
)

// FuzzLoad feeds compose files (and the env file they may name) to Load:
// the compose subset is the one file of a bundle written by hand. A refusal
// is one line wrapping ErrRefused; a bundle Load accepts has named,
// sorted services whose references hold, an env template that reads back
// as it was written, and Quadlet units in which every value stays on its
// own line (a line break in a value would add a key of its own making).
func FuzzLoad(f *testing.F) {
	ref, err := os.ReadFile("testdata/bundle/compose.yaml")
	if err != nil {
		f.Fatal(err)
	}
	webEnv, err := os.ReadFile("testdata/bundle/web.env")
	if err != nil {
		f.Fatal(err)
	}
	testfuzz.Add(f, "reference-bundle", ref, webEnv)
	for name, compose := range map[string]string{
		"one-service":        "services:\n  web:\n    image: a\n",
		"anchors":            "x-base: &base\n  image: a\n  restart: \"no\"\nservices:\n  a: *base\n  b:\n    <<: *base\n    depends_on: [a]\n",
		"anchor-in-itself":   "x-base: &base\n  image: a\n  <<: *base\nservices:\n  a: *base\n",
		"cycle":              "services:\n  a:\n    image: a\n    depends_on: [b]\n  b:\n    image: b\n    depends_on: [a]\n",
		"unsupported-key":    "services:\n  web:\n    image: a\n    deploy: {replicas: 2}\n",
		"user-line-break":    "services:\n  web:\n    image: a\n    user: \"1000\\nExecStartPre=/bin/false\"\n",
		"env-line-break":     "services:\n  web:\n    image: a\n    environment: {A: \"x\\nB=y\"}\n",
		"env-trailing-space": "services:\n  web:\n    image: a\n    environment: {A: \"x \"}\n",
		"env-bad-key":        "services:\n  web:\n    image: a\n    environment: {\"1B\": y}\n",
		"trailing-backslash": "services:\n  web:\n    image: a\n    user: \"a\\\\\"\n",
		"long-syntax":        "services:\n  web:\n    image: a\n    ports: [{target: 80, published: \"8080\", host_ip: 127.0.0.1, protocol: udp}]\n    volumes: [{type: volume, source: d, target: /d, read_only: true}]\nvolumes:\n  d: {}\n",
		"healthcheck":        "services:\n  web:\n    image: a\n    healthcheck: {test: [CMD-SHELL, \"exit 0\"], interval: 1h, retries: 0}\n",
	} {
		testfuzz.Add(f, name, []byte(compose), webEnv)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, compose, env []byte) {
		testfuzz.WriteFile(t, filepath.Join(dir, ComposeFile), compose, 0o644)
		testfuzz.WriteFile(t, filepath.Join(dir, "web.env"), env, 0o644)
		b, err := Load(context.Background(), dir)
		if err != nil {
			if !errors.Is(err, ErrRefused) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Load: %q is not one line wrapping ErrRefused", err)
			}
			return
		}
		if len(b.Services) == 0 || !slices.IsSortedFunc(b.Services, func(x, y Service) int { return strings.Compare(x.Name, y.Name) }) {
			t.Fatalf("services %v: none, or not sorted", b.Services)
		}
		for i, s := range b.Services {
			switch {
			case !nameRE.MatchString(s.Name) || (i > 0 && b.Services[i-1].Name == s.Name):
				t.Fatalf("service name %q", s.Name)
			case s.Image == "":
				t.Fatalf("service %s has no image", s.Name)
			case s.Restart != "always" && s.Restart != "no" && s.Restart != "on-failure":
				t.Fatalf("service %s: Restart=%q", s.Name, s.Restart)
			case (s.Health != nil) != s.Healthy:
				t.Fatalf("service %s: health %+v, healthy %v", s.Name, s.Health, s.Healthy)
			}
			for _, d := range s.DependsOn {
				if _, ok := b.Service(d.Service); !ok {
					t.Fatalf("service %s depends on %s, not in the bundle", s.Name, d.Service)
				}
			}
			for _, m := range s.Mounts {
				if !slices.Contains(b.Volumes, m.Volume) {
					t.Fatalf("service %s mounts undeclared volume %s", s.Name, m.Volume)
				}
			}
			back, err := parseEnv(Template(s.Env), "template")
			if err != nil {
				t.Fatalf("service %s: its env template does not read back: %v\n%s", s.Name, err, Template(s.Env))
			}
			if diff := cmp.Diff(s.Env, back, cmpopts.IgnoreFields(EnvLine{}, "From"), cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("service %s: env template round trip (-built +read back):\n%s", s.Name, diff)
			}
			b.Services[i].ImageID = "sha256:0123"
		}
		units, err := b.Units("/usr/bin/updater")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range b.Services {
			checkUnit(t, s.Name+".container", units[s.Name+".container"], []string{"Unit", "Container", "Service", "Install"},
				"ContainerName="+s.Name, "Label=twinroot.service="+s.Name, "WantedBy=multi-user.target")
		}
		for _, v := range b.Volumes {
			checkUnit(t, v+".volume", units[v+".volume"], []string{"Volume"}, "Label=twinroot.volume="+v)
		}
	})
}

// unitKeys are the keys the writer puts in each section; singles are the
// ones it writes at most once.
var (
	unitKeys = map[string][]string{
		"Unit": {"Description", "Requires", "After"},
		"Container": {"ContainerName", "Image", "Pull", "GlobalArgs", "EnvironmentFile", "Entrypoint", "Exec", "PublishPort",
			"Volume", "HealthCmd", "HealthInterval", "HealthTimeout", "HealthRetries", "HealthStartPeriod", "Notify",
			"HealthOnFailure", "ReadOnly", "DropCapability", "User", "Label"},
		"Service": {"ExecStartPre", "Restart", "TimeoutStartSec"},
		"Install": {"WantedBy"},
		"Volume":  {"VolumeName", "Label"},
	}
	repeated = []string{"Requires", "After", "PublishPort", "Volume", "DropCapability", "Label"}
)

// checkUnit reads a unit file by systemd's rules (a line ending in a
// backslash goes on) and wants exactly the sections it is written with, in
// order, only their keys, the single ones once, and the lines of must.
func checkUnit(t *testing.T, name string, unit []byte, sections []string, must ...string) {
	t.Helper()
	var got []string
	seen := map[string]bool{}
	section := ""
	lines := strings.Split(strings.TrimSuffix(string(unit), "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + lines[i]
		}
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
			continue
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
			got = append(got, section)
			continue
		}
		k, _, ok := strings.Cut(l, "=")
		if !ok || !slices.Contains(unitKeys[section], k) {
			t.Fatalf("%s: line %q is no key of [%s]:\n%s", name, l, section, unit)
		}
		if !slices.Contains(repeated, k) && seen[section+"."+k] {
			t.Fatalf("%s: %s= twice in [%s]:\n%s", name, k, section, unit)
		}
		seen[section+"."+k] = true
		must = slices.DeleteFunc(must, func(m string) bool { return m == l })
	}
	if !slices.Equal(got, sections) {
		t.Fatalf("%s: sections %v, want %v:\n%s", name, got, sections, unit)
	}
	if len(must) > 0 {
		t.Fatalf("%s: no line %q:\n%s", name, must[0], unit)
	}
}

// FuzzRender feeds a service's env template (from the slot) and the
// device's values.env (from the data partition) to Render: what it writes
// is one KEY=VALUE line per template line, in order, as the template's keys.
func FuzzRender(f *testing.F) {
	webEnv, err := os.ReadFile("testdata/bundle/web.env")
	if err != nil {
		f.Fatal(err)
	}
	lines, err := parseEnv(webEnv, "web.env")
	if err != nil {
		f.Fatal(err)
	}
	testfuzz.Add(f, "reference-bundle", Template(lines), []byte("# this device\nPORT=9000\n"))
	testfuzz.Add(f, "all-references", []byte("PORT=${PORT:-8080}\nNAME=${NAME}\nTOKEN=${secret:api_token}\nPRICE=$$5\nPLAIN=a b\n"), []byte("NAME=kiosk-7\n"))
	testfuzz.Add(f, "export-and-spaces", []byte("  export A = x \n\n#c\nB==\n"), []byte("export NAME=a=b\r\n"))
	testfuzz.Add(f, "lone-dollar", []byte("A=$\n"), []byte(""))
	testfuzz.Add(f, "unclosed", []byte("A=${NAME\n"), []byte("NAME=x\n"))
	dir := f.TempDir()
	r := Renderer{Templates: filepath.Join(dir, "env"), Data: filepath.Join(dir, "data"), Runtime: filepath.Join(dir, "run")}
	for _, d := range []string{r.Templates, r.Data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, template, values []byte) {
		testfuzz.WriteFile(t, filepath.Join(r.Templates, "web.env"), template, 0o644)
		testfuzz.WriteFile(t, filepath.Join(r.Data, "values.env"), values, 0o600)
		path, err := r.Render("web")
		if err != nil {
			return
		}
		tpl, err := parseEnv(template, "web.env")
		if err != nil {
			t.Fatalf("Render accepted a template parseEnv refuses: %v", err)
		}
		out, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseEnv(out, "rendered")
		if err != nil {
			t.Fatalf("rendered file does not read back: %v\n%s", err, out)
		}
		if strings.Count(string(out), "\n") != len(tpl) || len(got) != len(tpl) {
			t.Fatalf("rendered %d lines from a template of %d:\n%s", len(got), len(tpl), out)
		}
		for i := range got {
			if got[i].Key != tpl[i].Key {
				t.Fatalf("line %d renders key %s, the template's is %s", i+1, got[i].Key, tpl[i].Key)
			}
		}
	})
}

// FuzzReadBundle: bundle.json is read from the slot on every boot and by
// the health gate. What reads must survive a round trip.
func FuzzReadBundle(f *testing.F) {
	b, err := Load(context.Background(), "testdata/bundle")
	if err != nil {
		f.Fatal(err)
	}
	for i := range b.Services {
		b.Services[i].ImageID = "sha256:" + strings.Repeat("ab", 32)
		b.Services[i].Layers = []Layer{{DiffID: "sha256:" + strings.Repeat("cd", 32), Gzipped: 1 << 20}}
	}
	ref, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		f.Fatal(err)
	}
	testfuzz.Add(f, "reference-bundle", ref)
	testfuzz.Add(f, "empty", []byte(`{"services":[]}`))
	testfuzz.Add(f, "case-and-duplicates", []byte(`{"SERVICES":[{"name":"a","Name":"b","healthcheck":1}]}`))
	testfuzz.Add(f, "null", []byte(`null`))
	root := f.TempDir()
	path := filepath.Join(root, BundleDir, BundleFile)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		testfuzz.WriteFile(t, path, data, 0o644)
		b, err := ReadBundle(root)
		if err != nil {
			return
		}
		out, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("a bundle that reads does not marshal: %v", err)
		}
		testfuzz.WriteFile(t, path, out, 0o644)
		again, err := ReadBundle(root)
		if err != nil {
			t.Fatalf("re-marshalled bundle does not read: %v", err)
		}
		if diff := cmp.Diff(b, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-read +re-read):\n%s", diff)
		}
	})
}
