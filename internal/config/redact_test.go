package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The secrets of full; none may appear in any output.
var secrets = []string{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG"}

func TestRedaction(t *testing.T) {
	c, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Credentials.SecretAccessKey.Reveal(); got != "wJalrXUtnFEMI/K7MDENG" {
		t.Fatalf("Reveal() = %q", got)
	}
	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%10.3v"} {
		outputs["fmt "+verb+" *Config"] = fmt.Sprintf(verb, c)
		outputs["fmt "+verb+" Config"] = fmt.Sprintf(verb, *c)
		outputs["fmt "+verb+" Credentials"] = fmt.Sprintf(verb, c.Credentials)
		outputs["fmt "+verb+" Secret"] = fmt.Sprintf(verb, c.Credentials.SecretAccessKey)
	}
	outputs["String"] = c.String()
	for name, v := range map[string]any{"*Config": c, "Config": *c, "Credentials": c.Credentials} {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outputs["json "+name] = string(j)
		y, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outputs["yaml "+name] = string(y)
	}
	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		log := slog.New(h(&b))
		log.Info("config", "config", c, "value", *c, "credentials", c.Credentials, "secret", c.Credentials.SecretAccessKey)
		log.Info("any", slog.Any("config", c))
		outputs["slog "+name] = b.String()
	}
	for name, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) || strings.Contains(out, fmt.Sprintf("%x", s)) {
				t.Errorf("%s shows secret %q:\n%s", name, s, out)
			}
		}
	}
	// And the rest of the config is still there to read.
	for _, name := range []string{"String", "json *Config", "slog text", "slog json"} {
		if out := outputs[name]; !strings.Contains(out, "s3://releases/fleet") || !strings.Contains(out, "beta") {
			t.Errorf("%s lacks the source or channel:\n%s", name, out)
		}
	}
	if got, want := fmt.Sprint(c.Credentials.SecretAccessKey), Redacted; got != want {
		t.Errorf("Sprint(secret) = %q, want %q", got, want)
	}
	if got := fmt.Sprint(Secret("")); got != "" {
		t.Errorf("Sprint(empty secret) = %q, want \"\"", got)
	}
	t.Logf("String: %s", outputs["String"])
	t.Logf("JSON: %s", outputs["json *Config"])
}

func TestJSONReadable(t *testing.T) {
	c, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(j, &got); err != nil {
		t.Fatal(err)
	}
	health := got["health"].(map[string]any)
	reboot := got["reboot"].(map[string]any)
	for _, tc := range []struct {
		name string
		got  any
		want any
	}{
		{"check_interval", got["check_interval"], "30m0s"},
		{"check_jitter", got["check_jitter"], "0s"},
		{"health.deadline", health["deadline"], "1m30s"},
		{"reboot.window", reboot["window"], "22:30-02:00"},
		{"slot_size", got["slot_size"], float64(512 << 20)},
		{"credentials.secret_access_key", got["credentials"].(map[string]any)["secret_access_key"], Redacted},
	} {
		if tc.got != tc.want {
			t.Errorf("JSON %s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}
