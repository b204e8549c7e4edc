package config

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Redacted is what a Secret shows instead of its value.
const Redacted = "[redacted]"

// Secret is a string that never shows itself: fmt (every verb, %#v too),
// log/slog, encoding/json, yaml and encoding.TextMarshaler users all see
// Redacted, or "" when it is empty. Reveal gives the value.
type Secret string

// Reveal returns the secret's value, for the store client and nothing else.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) shown() string {
	if s == "" {
		return ""
	}
	return Redacted
}

func (s Secret) String() string   { return s.shown() }
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.shown()) }

// Format makes every fmt verb print the redacted form; without it %d or %x
// would print the raw string.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, s.GoString())
		return
	}
	io.WriteString(f, s.shown())
}

// MarshalText serves JSON, YAML and slog's handlers.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.shown()), nil }

// LogValue keeps a Secret redacted as a slog attribute of its own.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.shown()) }

// credentialsSummary says which credentials are in use without showing any.
func (c Config) credentialsSummary() string {
	switch {
	case c.CredentialsFile != "":
		return "file " + c.CredentialsFile
	case !c.Credentials.IsZero():
		return "static " + Redacted
	default:
		return "default chain"
	}
}

// LogValue logs the config as a group, credentials redacted.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("source", c.Source),
		slog.String("channel", c.Channel),
	}
	if c.Endpoint != "" {
		attrs = append(attrs, slog.String("endpoint", c.Endpoint))
	}
	if c.Region != "" {
		attrs = append(attrs, slog.String("region", c.Region))
	}
	attrs = append(attrs,
		slog.String("credentials", c.credentialsSummary()),
		slog.Duration("check_interval", c.CheckInterval),
		slog.Duration("check_jitter", c.CheckJitter),
		slog.String("reboot", c.rebootSummary()),
		slog.Int("trial_boots", c.TrialBoots),
		slog.Group("health",
			slog.Any("units", c.Health.Units),
			slog.Any("commands", c.Health.Commands),
			slog.Any("containers", c.Health.Containers),
			slog.Duration("deadline", c.Health.Deadline)),
		slog.Int64("slot_size", c.SlotSize),
		slog.String("state_dir", c.StateDir),
	)
	return slog.GroupValue(attrs...)
}

func (c Config) rebootSummary() string {
	if c.Reboot.Policy == PolicyWindow {
		return string(c.Reboot.Policy) + " " + c.Reboot.Window.String()
	}
	return string(c.Reboot.Policy)
}

// String is a one-line summary, credentials redacted.
func (c Config) String() string {
	var b strings.Builder
	for i, a := range c.LogValue().Group() {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%v", a.Key, a.Value)
	}
	return b.String()
}

// MarshalJSON writes durations as "1h0m0s" and secrets redacted.
func (c Config) MarshalJSON() ([]byte, error) {
	type plain Config // no methods: no recursion
	type health Health
	return json.Marshal(struct {
		*plain
		CheckInterval string `json:"check_interval"`
		CheckJitter   string `json:"check_jitter"`
		Health        any    `json:"health"`
	}{
		plain:         (*plain)(&c),
		CheckInterval: c.CheckInterval.String(),
		CheckJitter:   c.CheckJitter.String(),
		Health: struct {
			*health
			Deadline string `json:"deadline"`
		}{(*health)(&c.Health), c.Health.Deadline.String()},
	})
}
