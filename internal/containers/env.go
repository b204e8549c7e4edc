package containers

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"

	"github.com/twinroot/twinroot/internal/atomicfile"
	"github.com/twinroot/twinroot/internal/refusal"
)

var (
	keyRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	refRE    = regexp.MustCompile(`\$\$|\$\{([^}]*)\}|\$`)
	varRE    = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)(:-(.*))?$`)
	secretRE = regexp.MustCompile(`^secret:([a-z0-9][a-z0-9_.-]*)$`)
)

// readEnvFile reads a template: KEY=VALUE lines, blank lines and # comments.
func readEnvFile(path string) ([]EnvLine, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseEnv(b, "env_file "+filepath.Base(path))
}

func parseEnv(b []byte, from string) ([]EnvLine, error) {
	var lines []EnvLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		k = strings.TrimSpace(strings.TrimPrefix(k, "export "))
		if !ok || !keyRE.MatchString(k) {
			return nil, fmt.Errorf("line %d: want KEY=VALUE, got %q", n, l)
		}
		lines = append(lines, EnvLine{Key: k, Value: v, From: fmt.Sprintf("%s line %d", from, n)})
	}
	return lines, sc.Err()
}

// checkTemplate checks that every line of a template reads back from the
// env file as it is (Template writes one KEY=VALUE line each, which parseEnv
// reads back trimmed) and every ${...} reference, and returns the secrets
// it names.
func checkTemplate(env []EnvLine) ([]string, error) {
	var secrets []string
	seen := map[string]bool{}
	for _, l := range env {
		switch {
		case !keyRE.MatchString(l.Key):
			return nil, fmt.Errorf("%s: %q is not a variable name (letters, digits and _, not starting with a digit)", l.From, l.Key)
		case strings.ContainsAny(l.Value, "\n\r"):
			return nil, fmt.Errorf("%s: %s: the value has a line break, which an env file cannot carry", l.From, l.Key)
		case strings.TrimRightFunc(l.Value, unicode.IsSpace) != l.Value:
			return nil, fmt.Errorf("%s: %s: the value ends in white space, which an env file cannot carry", l.From, l.Key)
		}
		for _, m := range refRE.FindAllStringSubmatch(l.Value, -1) {
			switch {
			case m[0] == "$$":
			case m[0] == "$":
				return nil, fmt.Errorf("%s: %s: a lone $ (write $$ for a dollar sign, ${NAME} for a value)", l.From, l.Key)
			case secretRE.MatchString(m[1]):
				name := secretRE.FindStringSubmatch(m[1])[1]
				if !seen[name] {
					seen[name] = true
					secrets = append(secrets, name)
				}
			case varRE.MatchString(m[1]):
			default:
				return nil, fmt.Errorf("%s: %s: ${%s} is not ${NAME}, ${NAME:-default} or ${secret:name}", l.From, l.Key, m[1])
			}
		}
	}
	return secrets, nil
}

// Template is the text of a service's env template as the slot carries it.
func Template(env []EnvLine) []byte {
	var b bytes.Buffer
	for _, l := range env {
		fmt.Fprintf(&b, "%s=%s\n", l.Key, l.Value)
	}
	return b.Bytes()
}

// Renderer writes a service's env file from its template, the device's
// values and its secrets.
type Renderer struct {
	Templates string // the slot's env templates: BundleDir/env
	Data      string // the device's container data: values.env and secrets/
	Runtime   string // where rendered files go: RuntimeEnvDir
}

// SystemRenderer is the renderer of a running device.
func SystemRenderer() Renderer {
	return Renderer{Templates: filepath.Join(BundleDir, "env"), Data: DeviceDataDir, Runtime: RuntimeEnvDir}
}

// Render writes Runtime/<service>.env (0600) and returns its path. A
// secret the device does not have yet is generated once and kept under
// Data/secrets (0600); a value missing from Data/values.env without a
// default is an error that names it.
func (r Renderer) Render(service string) (string, error) {
	tpl, err := os.ReadFile(filepath.Join(r.Templates, service+".env"))
	if err != nil {
		return "", fmt.Errorf("service %s has no env template in this image: %w", service, err)
	}
	env, err := parseEnv(tpl, service+".env")
	if err != nil {
		return "", err
	}
	values := map[string]string{}
	valuesFile := filepath.Join(r.Data, "values.env")
	if b, err := os.ReadFile(valuesFile); err == nil {
		vs, err := parseEnv(b, valuesFile)
		if err != nil {
			return "", refusal.Errorf("%s: %w", valuesFile, err)
		}
		for _, v := range vs {
			values[v.Key] = v.Value
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var out bytes.Buffer
	for _, l := range env {
		var ferr error
		v := refRE.ReplaceAllStringFunc(l.Value, func(m string) string {
			if m == "$$" {
				return "$"
			}
			if m == "$" {
				ferr = refusal.Errorf("%s: %s: a lone $", l.From, l.Key)
				return ""
			}
			ref := m[2 : len(m)-1]
			if s := secretRE.FindStringSubmatch(ref); s != nil {
				val, err := r.secret(s[1])
				if err != nil && ferr == nil {
					ferr = err
				}
				return val
			}
			vm := varRE.FindStringSubmatch(ref)
			if vm == nil {
				ferr = refusal.Errorf("%s: %s: bad reference ${%s}", l.From, l.Key, ref)
				return ""
			}
			if val, ok := values[vm[1]]; ok {
				return val
			}
			if vm[2] != "" {
				return vm[3]
			}
			if ferr == nil {
				ferr = refusal.Errorf("%s: %s needs a value for %s: set %s=... in %s", l.From, l.Key, vm[1], vm[1], valuesFile)
			}
			return ""
		})
		if ferr != nil {
			return "", fmt.Errorf("env of service %s: %w", service, ferr)
		}
		if strings.ContainsAny(v, "\n\r") {
			return "", refusal.Errorf("env of service %s: %s: the value has a line break", service, l.Key)
		}
		fmt.Fprintf(&out, "%s=%s\n", l.Key, v)
	}
	// The directory is made on every start: /run is a tmpfs that anything
	// may have cleaned, and a start must never depend on an earlier one.
	if err := os.MkdirAll(r.Runtime, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(r.Runtime, service+".env")
	if err := atomicfile.Write(path, out.Bytes(), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// secret returns the device's secret name, making it the first time.
func (r Renderer) secret(name string) (string, error) {
	dir := filepath.Join(r.Data, "secrets")
	path := filepath.Join(dir, name)
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("secret %s: %w", name, err)
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	val := hex.EncodeToString(buf)
	// Linked into place after a sync: a power cut leaves no secret or the
	// whole one, and of two services starting at once both get the first.
	if err := atomicfile.Create(path, []byte(val+"\n"), 0o600); errors.Is(err, os.ErrExist) {
		return r.secret(name)
	} else if err != nil {
		return "", fmt.Errorf("secret %s: %w", name, err)
	}
	return val, nil
}
