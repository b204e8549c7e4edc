package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/twinroot/twinroot/internal/testfuzz"
)

// FuzzParse: device.yaml is written by hand, by provisioning scripts and by
// whoever holds the data partition. Parse must not panic, must only accept
// configs within the documented ranges, must report errors one per line,
// and must never show a secret it accepted.
func FuzzParse(f *testing.F) {
	for i, s := range []string{
		full, "", "source: s3://b\n", "source: [a]\n", "a: &x [1]\nb: *x\n", "<<: {source: s3://b}\n",
		"source: s3://b\nhealth: {units: [*a]}\n", "source: s3://b\ncredentials: {access_key_id: a, secret_access_key: bbbbbbbbbbbb}\n",
		"check_interval: \"1h\\n2\"\n", "--- !!map\n? source\n: s3://b\n",
	} {
		testfuzz.Add(f, fmt.Sprintf("config-%d", i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a config and an error")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "device.yaml: ") {
					t.Fatalf("error line %q does not name the file", line)
				}
			}
			return
		}
		switch {
		case c.Source == "" || c.Channel == "" || c.StateDir == "" || c.StateDir[0] != '/':
			t.Fatalf("accepted %+v with a missing field", c)
		case c.CheckInterval < MinCheckInterval || c.CheckJitter < 0 || c.CheckJitter > c.CheckInterval:
			t.Fatalf("accepted interval %v, jitter %v", c.CheckInterval, c.CheckJitter)
		case c.TrialBoots < 1 || c.TrialBoots > MaxTrialBoots || c.Health.Deadline <= 0:
			t.Fatalf("accepted trial_boots %d, deadline %v", c.TrialBoots, c.Health.Deadline)
		case c.Reboot.Policy != PolicyNow && c.Reboot.Policy != PolicyWindow && c.Reboot.Policy != PolicyNextBoot:
			t.Fatalf("accepted policy %q", c.Reboot.Policy)
		case (c.Reboot.Policy == PolicyWindow) == c.Reboot.Window.IsZero():
			t.Fatalf("accepted policy %q with window %q", c.Reboot.Policy, c.Reboot.Window)
		}
		// Redaction means the outputs do not depend on the secrets' values:
		// other values of the same presence give the same bytes.
		other := *c
		for _, p := range []*Secret{&other.Credentials.AccessKeyID, &other.Credentials.SecretAccessKey, &other.Credentials.SessionToken} {
			if *p != "" {
				*p = "other value"
			}
		}
		j, _ := json.Marshal(c)
		oj, _ := json.Marshal(other)
		if string(j) != string(oj) {
			t.Fatalf("JSON depends on the secrets:\n%s\n%s", j, oj)
		}
		if c.String() != other.String() || fmt.Sprintf("%#v", *c) != fmt.Sprintf("%#v", other) {
			t.Fatalf("String() or %%#v depends on the secrets:\n%s\n%s", c, other)
		}
	})
}
