package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte("source: s3://releases/fleet\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Source:        "s3://releases/fleet",
		Channel:       "stable",
		CheckInterval: time.Hour,
		CheckJitter:   6 * time.Minute,
		Reboot:        Reboot{Policy: PolicyNow},
		TrialBoots:    1,
		Health:        Health{Deadline: 2 * time.Minute},
		SlotSize:      2 << 30,
		StateDir:      "/data/twinroot/state",
		Rollout:       Rollout{MachineIDFile: "/etc/machine-id"},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Parse defaults (-want +got):\n%s", diff)
	}
}

const full = `# every field
source: s3://releases/fleet
endpoint: http://10.0.2.100:9000
region: eu-central-1
credentials:
  access_key_id: AKIDEXAMPLE
  secret_access_key: wJalrXUtnFEMI/K7MDENG
  session_token: tok
channel: beta
check_interval: 30m
check_jitter: 0s
reboot:
  policy: window
  window: "22:30-02:00"
trial_boots: 3
health:
  units: [sshd.service, "podman.socket"]
  commands:
    - curl -fsS http://127.0.0.1/health
  containers: [web, db]
  deadline: 90s
slot_size: 512MiB
state_dir: /var/lib/twinroot/
rollout:
  pin: canary
  machine_id_file: /data/etc/machine-id
report:
  to: s3://fleet/reports
  endpoint: http://10.0.2.100:9001
  credentials: {access_key_id: PUTONLY, secret_access_key: s3cr3t}
`

func TestEveryField(t *testing.T) {
	c, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Source:   "s3://releases/fleet",
		Endpoint: "http://10.0.2.100:9000",
		Region:   "eu-central-1",
		Credentials: Credentials{
			AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG", SessionToken: "tok",
		},
		Channel:       "beta",
		CheckInterval: 30 * time.Minute,
		CheckJitter:   0,
		Reboot:        Reboot{Policy: PolicyWindow, Window: Window{Start: 22*time.Hour + 30*time.Minute, End: 2 * time.Hour}},
		TrialBoots:    3,
		Health: Health{
			Units:      []string{"sshd.service", "podman.socket"},
			Commands:   []string{"curl -fsS http://127.0.0.1/health"},
			Containers: []string{"web", "db"},
			Deadline:   90 * time.Second,
		},
		SlotSize: 512 << 20,
		StateDir: "/var/lib/twinroot",
		Rollout:  Rollout{Pin: "canary", MachineIDFile: "/data/etc/machine-id"},
		Report: Report{To: "s3://fleet/reports", Endpoint: "http://10.0.2.100:9001",
			Credentials: Credentials{AccessKeyID: "PUTONLY", SecretAccessKey: "s3cr3t"}},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

func TestJitterFollowsInterval(t *testing.T) {
	c, err := Parse([]byte("source: file:///media/usb\ncheck_interval: 10m\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.CheckJitter, time.Minute; got != want {
		t.Errorf("CheckJitter = %v, want %v", got, want)
	}
	for range 100 {
		if d := c.NextCheck(); d < 10*time.Minute || d > 11*time.Minute {
			t.Fatalf("NextCheck() = %v, want within [10m, 11m]", d)
		}
	}
}

func TestBadFields(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"duration", "source: s3://b\ncheck_interval: 5x\n", `device.yaml: check_interval: "5x" is not a duration, like 90s, 30m or 1h (line 2)`},
		{"interval below minimum", "source: s3://b\ncheck_interval: 30s\n", "device.yaml: check_interval: 30s is less than the minimum of 1m0s (line 2)"},
		{"jitter above interval", "source: s3://b\ncheck_jitter: 2h\n", "check_jitter: 2h0m0s is outside 0 to check_interval (1h0m0s)"},
		{"negative jitter", "source: s3://b\ncheck_jitter: -1s\n", "check_jitter: -1s is outside"},
		{"missing source", "channel: stable\n", "device.yaml: source: missing: want s3://bucket/prefix, https://host/prefix, http://host/prefix or file:///path"},
		{"empty file", "", "source: missing"},
		{"unknown scheme", "source: ftp://h/p\n", `source: store URL "ftp://h/p": unknown scheme`},
		{"no bucket", "source: s3:///p\n", "source: store URL \"s3:///p\" has no bucket"},
		{"relative file", "source: file://usb/x\n", "does not name an absolute local path"},
		{"dotdot", "source: https://h/a/../b\n", ". and .. are not allowed"},
		{"password in URL", "source: https://u:hunter2@h/p\n", "source: store URL: credentials, query and fragment are not allowed"},
		{"endpoint scheme", "source: s3://b\nendpoint: 10.0.2.100:9000\n", `endpoint: "10.0.2.100:9000" is not an http:// or https:// URL (line 2)`},
		{"endpoint without s3", "source: https://h/p\nendpoint: http://h:9000\n", "endpoint: only used with an s3:// source"},
		{"region without s3", "source: file:///m\nregion: x\n", "region: only used with an s3:// source"},
		{"credentials without s3", "source: https://h/p\ncredentials: {access_key_id: a, secret_access_key: b}\n", "credentials: only used with an s3:// source (line 2)"},
		{"half credentials", "source: s3://b\ncredentials: {access_key_id: a}\n", "credentials.secret_access_key: missing: needed with access_key_id"},
		{"both credentials", "source: s3://b\ncredentials: {access_key_id: a, secret_access_key: b}\ncredentials_file: /etc/k\n", "credentials_file: give credentials or credentials_file, not both (line 3)"},
		{"relative credentials file", "source: s3://b\ncredentials_file: k\n", `credentials_file: "k" is not an absolute path`},
		{"channel", "source: s3://b\nchannel: ../x\n", `channel: "../x" is not a channel name`},
		{"policy", "source: s3://b\nreboot: {policy: later}\n", `reboot.policy: "later" is not a policy (want now, window or next-boot) (line 2)`},
		{"window missing", "source: s3://b\nreboot: {policy: window}\n", "reboot.window: missing: policy window needs a window"},
		{"window unused", "source: s3://b\nreboot: {window: 02:00-04:00}\n", "reboot.window: only used with policy window (line 2)"},
		{"window form", "source: s3://b\nreboot: {policy: window, window: 2-4}\n", `reboot.window: "2-4" is not a window`},
		{"window hour", "source: s3://b\nreboot: {policy: window, window: 24:00-04:00}\n", `"24:00-04:00" is not a window`},
		{"empty window", "source: s3://b\nreboot: {policy: window, window: 03:00-03:00}\n", "starts where it ends"},
		{"trial boots range", "source: s3://b\ntrial_boots: 4\n", "device.yaml: trial_boots: 4 is outside 1 to 3 (line 2)"},
		{"trial boots zero", "source: s3://b\ntrial_boots: 0\n", "trial_boots: 0 is outside 1 to 3"},
		{"trial boots word", "source: s3://b\ntrial_boots: two\n", `trial_boots: "two" is not a whole number`},
		{"deadline", "source: s3://b\nhealth: {deadline: 0s}\n", "health.deadline: 0s is not a positive duration (line 2)"},
		{"units not a list", "source: s3://b\nhealth:\n  units: sshd.service\n", "health.units: want a list, like [a, b] (line 3)"},
		{"empty unit", "source: s3://b\nhealth:\n  units: [a, \"\"]\n", "health.units[1]: want a non-empty string (line 3)"},
		{"slot size form", "source: s3://b\nslot_size: 2X\n", `slot_size: "2X" is not a size, like 512M or 2G`},
		{"slot size small", "source: s3://b\nslot_size: 1M\n", "slot_size: 1048576 bytes is below the minimum of 16 MiB"},
		{"state dir", "source: s3://b\nstate_dir: var/lib\n", `state_dir: "var/lib" is not an absolute path`},
		{"rollout pin", "source: s3://b\nrollout: {pin: first}\n", `rollout.pin: "first" is not a pin (want canary or late) (line 2)`},
		{"machine id file", "source: s3://b\nrollout: {machine_id_file: machine-id}\n", `rollout.machine_id_file: "machine-id" is not an absolute path`},
		{"report to", "source: s3://b\nreport: {to: https://h/r}\n", `report.to: "https://h/r" is not s3://bucket/prefix or file:///path (line 2)`},
		{"report without to", "source: s3://b\nreport: {region: x}\n", "report.to: missing: where the reports go"},
		{"report half credentials", "source: s3://b\nreport: {to: s3://r/p, credentials: {access_key_id: a}}\n", "report.credentials.secret_access_key: missing"},
		{"report credentials on file", "source: s3://b\nreport: {to: file:///r, credentials: {access_key_id: a, secret_access_key: b}}\n", "report.to: endpoint, region and credentials are only used with s3://"},
		{"unknown field", "source: s3://b\ncheck_intervall: 1h\n", "device.yaml: check_intervall: unknown field (line 2)"},
		{"unknown nested", "source: s3://b\nhealth: {unit: [a]}\n", "health.unit: unknown field"},
		{"unknown field with a line break", "source: s3://b\n? \"a\\nb: c\"\n: 1\n", `device.yaml: "a\nb: c": unknown field (line 2)`},
		{"twice", "source: s3://b\nchannel: a\nchannel: b\n", "channel: given twice (first on line 2) (line 3)"},
		{"list for string", "source: [s3://b]\n", "source: want a single value, not a list or mapping (line 1)"},
		{"section not a mapping", "source: s3://b\nreboot: now\n", "reboot: want a mapping of fields (name: value) (line 2)"},
		{"not a mapping", "- a\n", "device.yaml: want a mapping of fields"},
		{"syntax", "source: s3://b\n  bad: [\n", "device.yaml: line"},
		{"two documents", "source: s3://b\n---\nchannel: x\n", "want one YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want error %q", tc.yaml, c, tc.want)
			}
			if c != nil {
				t.Errorf("Parse(%q) returned a config with its error", tc.yaml)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) error:\n%v\nwant it to contain:\n%s", tc.yaml, err, tc.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %v is not a *FieldError", err)
			}
		})
	}
}

func TestPasswordNotEchoed(t *testing.T) {
	for _, y := range []string{
		"source: https://u:hunter2@h/p\n",
		"source: \"https://u:hunter2@h/p%zz\"\n",
		"source: s3://b\nendpoint: http://u:hunter2@h:9000\n",
		"source: s3://b\ncredentials: {secret_acess_key: hunter2}\n",
	} {
		_, err := Parse([]byte(y))
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Parse(%q) error = %v, want an error without the password", y, err)
		}
	}
}

func TestAllErrorsTogether(t *testing.T) {
	_, err := Parse([]byte("check_interval: 5x\ntrial_boots: 9\nfoo: 1\nhealth: {deadline: -1m}\n"))
	if err == nil {
		t.Fatal("Parse accepted four bad fields")
	}
	want := []string{
		`device.yaml: check_interval: "5x" is not a duration, like 90s, 30m or 1h (line 1)`,
		`device.yaml: foo: unknown field (line 3)`,
		`device.yaml: source: missing: want s3://bucket/prefix, https://host/prefix, http://host/prefix or file:///path`,
		`device.yaml: trial_boots: 9 is outside 1 to 3 (line 2)`,
		`device.yaml: health.deadline: -1m0s is not a positive duration (line 4)`,
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"2G": 2 << 30, "2GiB": 2 << 30, "2GB": 2 << 30, "512M": 512 << 20, "64K": 64 << 10, "1T": 1 << 40, "1048576": 1 << 20,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1G", "2g", "1.5G", "2 G", "2X", "99999999999T"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func write(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

func TestLoadPermissions(t *testing.T) {
	const creds = "source: s3://b\ncredentials: {access_key_id: AKID, secret_access_key: s3cr3t}\n"
	if _, err := Load(write(t, "device.yaml", creds, 0o600)); err != nil {
		t.Errorf("Load of a 0600 file with credentials: %v", err)
	}
	if _, err := Load(write(t, "device.yaml", creds, 0o400)); err != nil {
		t.Errorf("Load of a 0400 file with credentials: %v", err)
	}
	if _, err := Load(write(t, "device.yaml", "source: s3://b\n", 0o644)); err != nil {
		t.Errorf("Load of a 0644 file without credentials: %v", err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		p := write(t, "device.yaml", creds, mode)
		_, err := Load(p)
		want := fmt.Sprintf("%s: credentials: mode %04o is too open", p, mode)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("Load of a %04o file with credentials: %v, want an error containing %q", mode, err, want)
		}
	}
	// The mode error is reported with the file's other errors.
	p := write(t, "device.yaml", creds+"trial_boots: 7\n", 0o644)
	if _, err := Load(p); err == nil || len(strings.Split(err.Error(), "\n")) != 2 {
		t.Errorf("Load = %v, want two errors (mode and trial_boots)", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want os.ErrNotExist", err)
	}
}

func TestLoadCredentialsFile(t *testing.T) {
	const aws = "# written by provisioning\n[other]\naws_access_key_id = WRONG\n\n[default]\naws_access_key_id = AKID\naws_secret_access_key = s3cr3t/key=\naws_session_token=tok\n"
	cf := write(t, "credentials", aws, 0o600)
	c, err := Load(write(t, "device.yaml", "source: s3://b\ncredentials_file: "+cf+"\n", 0o644))
	if err != nil {
		t.Fatal(err)
	}
	want := Credentials{AccessKeyID: "AKID", SecretAccessKey: "s3cr3t/key=", SessionToken: "tok"}
	if diff := cmp.Diff(want, c.Credentials); diff != "" {
		t.Errorf("Credentials (-want +got):\n%s", diff)
	}

	open := write(t, "credentials", aws, 0o644)
	_, err = Load(write(t, "device.yaml", "source: s3://b\ncredentials_file: "+open+"\n", 0o644))
	if err == nil || !strings.Contains(err.Error(), "credentials_file: "+open+": mode 0644 is too open") {
		t.Errorf("Load with a 0644 credentials file: %v", err)
	}
	empty := write(t, "credentials", "[default]\nregion = x\n", 0o600)
	_, err = Load(write(t, "device.yaml", "source: s3://b\ncredentials_file: "+empty+"\n", 0o600))
	if err == nil || !strings.Contains(err.Error(), "no aws_access_key_id and aws_secret_access_key") {
		t.Errorf("Load with a credentials file without keys: %v", err)
	}
	garbled := write(t, "credentials", "[default]\nAKIDs3cr3t\n", 0o600)
	_, err = Load(write(t, "device.yaml", "source: s3://b\ncredentials_file: "+garbled+"\n", 0o600))
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), ":2: want key = value") {
		t.Errorf("Load with a garbled credentials file: %v, want a line number and no secret", err)
	}
}

func TestLoadTooLarge(t *testing.T) {
	p := write(t, "device.yaml", "source: s3://b\n"+strings.Repeat("# pad\n", 200_000), 0o600)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("Load of a 1.2 MB file: %v, want too large", err)
	}
}
