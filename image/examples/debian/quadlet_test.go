package debian_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/image/examples/debian"
)

// quadletUnit uses every key `updater build --containers` may write.
const quadletUnit = `[Unit]
Description=web front

[Container]
Image=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
Pull=never
GlobalArgs=--storage-opt=additionalimagestore=/usr/lib/containers/storage
ContainerName=web
Notify=healthy
HealthCmd=wget -q -O /dev/null http://127.0.0.1:8080/
HealthInterval=5s
HealthStartPeriod=30s
HealthRetries=3
HealthTimeout=2s
EnvironmentFile=/run/twinroot/containers/web.env
PublishPort=8080:8080
Volume=web-data.volume:/data
ReadOnly=true
DropCapability=ALL
User=1000
Label=org.twinroot.service=web
Exec=httpd -f -p 8080
Entrypoint=/bin/busybox

[Service]
ExecStartPre=/usr/bin/true
Restart=on-failure
TimeoutStartSec=300

[Install]
WantedBy=multi-user.target
`

// TestQuadletDryRun runs the root's own Quadlet (podman 5.4) on a unit in a
// copy of the assembled root: it needs root (chroot) and the base root,
// which it builds unless -short.
func TestQuadletDryRun(t *testing.T) {
	root := assembled(t)
	dir := filepath.Join(root, "usr/share/containers/systemd")
	write := func(name, s string) {
		t.Helper()
		p := filepath.Join(dir, name)
		os.Remove(p)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("web-data.volume", "[Volume]\nLabel=org.twinroot.service=web\n")
	write("web.container", quadletUnit)

	stdout, stderr, code := quadlet(t, root)
	if code != 0 {
		t.Fatalf("quadlet -dryrun exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"---web.service---", "---web-data-volume.service---",
		"ExecStart=/usr/bin/podman --storage-opt=additionalimagestore=/usr/lib/containers/storage run --name web",
		"--pull never", "--sdnotify=healthy", "--read-only", "--cap-drop all", "--user 1000",
		"-v systemd-web-data:/data", "--env-file /run/twinroot/containers/web.env",
		"--health-start-period 30s", "--entrypoint /bin/busybox",
		"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef httpd -f -p 8080",
		"Type=notify", "TimeoutStartSec=300", "Restart=on-failure",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("quadlet -dryrun output lacks %q:\n%s", want, stdout)
		}
	}

	// An unknown key: exit 1, the unit left out, the key named on stderr.
	write("web.container", strings.Replace(quadletUnit, "[Container]\n", "[Container]\nBogusKey=1\n", 1))
	stdout, stderr, code = quadlet(t, root)
	if code != 1 {
		t.Errorf("quadlet -dryrun with an unknown key: exit %d, want 1", code)
	}
	if want := `converting "web.container": unsupported key 'BogusKey' in group 'Container'`; !strings.Contains(stderr, want) {
		t.Errorf("quadlet -dryrun stderr lacks %q:\n%s", want, stderr)
	}
	if strings.Contains(stdout, "---web.service---") {
		t.Errorf("quadlet -dryrun printed the unit with an unknown key:\n%s", stdout)
	}
}

func quadlet(t *testing.T, root string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.CommandContext(t.Context(), "chroot", root, "/usr/libexec/podman/quadlet", "-dryrun")
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

// assembled returns a root assembled for this test from the cached base,
// with a stand-in updater.
func assembled(t *testing.T) string {
	t.Helper()
	return assembledWith(t, "")
}

// assembledWith returns a root assembled for this test from the cached base
// with the updater binary updater ("" for a stand-in).
func assembledWith(t *testing.T, updater string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (debootstrap, chroot)")
	}
	cache := filepath.Join(repoRoot(t), "build", "debian")
	if _, err := os.Stat(debian.BaseDir(cache)); err != nil && testing.Short() {
		t.Skipf("no base root at %s: skipped with -short (build-debian makes it)", debian.BaseDir(cache))
	}
	base, err := debian.BuildBase(t.Context(), cache, tlog{t})
	if err != nil {
		t.Fatal(err)
	}
	// Beside the base, so the copy is made of hard links.
	dir, err := os.MkdirTemp(cache, ".test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root := filepath.Join(dir, "root")
	if updater == "" {
		updater = filepath.Join(dir, "updater")
		if err := os.WriteFile(updater, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := debian.Assemble(t.Context(), base, updater, root); err != nil {
		t.Fatal(err)
	}
	return root
}

func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	t.Fatal("no go.mod above " + dir)
	return ""
}

// tlog sends progress lines to the test log.
type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
