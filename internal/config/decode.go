package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/storeurl"
)

// FieldError is one problem with a device config.
type FieldError struct {
	File  string // the path given to Load, or "device.yaml"
	Field string // dotted, like "health.deadline"; "" for the file as a whole
	Line  int    // 0 when the field was not given
	Msg   string
}

// Refused marks a field error as a refusal (package refusal): the user's
// input, nothing changed.
func (e *FieldError) Refused() bool { return true }

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

// decoder walks the YAML node tree of one file and collects every error.
type decoder struct {
	file  string
	errs  []error
	lines map[string]int // field given → its line
}

func (d *decoder) errorf(field string, line int, format string, args ...any) {
	msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " ")
	d.errs = append(d.errs, &FieldError{File: d.file, Field: field, Line: line, Msg: msg})
}

// fail reports a problem with a field, at the line it was given on; only
// the first problem of each field, so a value that did not decode is not
// range-checked too.
func (d *decoder) fail(field, format string, args ...any) {
	for _, e := range d.errs {
		if e.(*FieldError).Field == field {
			return
		}
	}
	d.errorf(field, d.lines[field], format, args...)
}

// field decodes the value node of one field named name.
type field func(d *decoder, name string, n *yaml.Node)

// parse decodes and checks one file. The config is returned even with
// errors, so Load can add its own to the same list.
func parse(file string, data []byte) (*Config, []error) {
	d := &decoder{file: file, lines: map[string]int{}}
	c := Default()
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF): // empty: every field missing
	case err != nil:
		d.errorf("", 0, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		return c, d.errs
	default:
		if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
			d.errorf("", 0, "want one YAML document, found more (or a syntax error after the first)")
			return c, d.errs
		}
		if root := resolve(doc.Content[0]); root.ShortTag() != "!!null" {
			d.mapping("", root, c.fields())
		}
	}
	d.check(c)
	return c, d.errs
}

func (c *Config) fields() map[string]field {
	return map[string]field{
		"source":   str(&c.Source),
		"endpoint": str(&c.Endpoint),
		"region":   str(&c.Region),
		"credentials": section(map[string]field{
			"access_key_id":     secret(&c.Credentials.AccessKeyID),
			"secret_access_key": secret(&c.Credentials.SecretAccessKey),
			"session_token":     secret(&c.Credentials.SessionToken),
		}),
		"credentials_file": str(&c.CredentialsFile),
		"channel":          str(&c.Channel),
		"check_interval":   duration(&c.CheckInterval),
		"check_jitter":     duration(&c.CheckJitter),
		"reboot": section(map[string]field{
			"policy": scalar(func(s string) error { c.Reboot.Policy = Policy(s); return nil }),
			"window": scalar(func(s string) error { return set(&c.Reboot.Window, s, ParseWindow) }),
		}),
		"trial_boots": scalar(func(s string) error {
			return set(&c.TrialBoots, s, func(s string) (int, error) {
				n, err := strconv.Atoi(s)
				if err != nil {
					return 0, fmt.Errorf("%q is not a whole number", s)
				}
				return n, nil
			})
		}),
		"health": section(map[string]field{
			"units":      list(&c.Health.Units),
			"commands":   list(&c.Health.Commands),
			"containers": list(&c.Health.Containers),
			"deadline":   duration(&c.Health.Deadline),
		}),
		"slot_size": scalar(func(s string) error { return set(&c.SlotSize, s, ParseSize) }),
		"state_dir": str(&c.StateDir),
		"rollout": section(map[string]field{
			"pin":             str(&c.Rollout.Pin),
			"machine_id_file": str(&c.Rollout.MachineIDFile),
		}),
		"report": section(map[string]field{
			"to":       str(&c.Report.To),
			"endpoint": str(&c.Report.Endpoint),
			"region":   str(&c.Report.Region),
			"credentials": section(map[string]field{
				"access_key_id":     secret(&c.Report.Credentials.AccessKeyID),
				"secret_access_key": secret(&c.Report.Credentials.SecretAccessKey),
				"session_token":     secret(&c.Report.Credentials.SessionToken),
			}),
		}),
	}
}

// set stores parse(s) in *p, leaving *p as it was on an error.
func set[T any](p *T, s string, parse func(string) (T, error)) error {
	v, err := parse(s)
	if err == nil {
		*p = v
	}
	return err
}

// resolve follows an alias (*name) to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// shownName is a field name from the file as an error shows it: quoted
// unless it is letters, digits, _ and -, so that a name holding a line break
// or a colon cannot make one error look like two.
func shownName(name string) string {
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' && r != '-' {
			return strconv.Quote(name)
		}
	}
	if name == "" {
		return `""`
	}
	return name
}

func (d *decoder) mapping(name string, n *yaml.Node, fields map[string]field) {
	if n.Kind != yaml.MappingNode {
		d.errorf(name, n.Line, "want a mapping of fields (name: value)")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.errorf(name, k.Line, "a field name must be plain text")
			continue
		}
		key := join(name, k.Value)
		f, ok := fields[k.Value]
		if !ok {
			// The value is not echoed: a misspelt secret_access_key holds a secret.
			d.errorf(join(name, shownName(k.Value)), k.Line, "unknown field")
			continue
		}
		if first, dup := d.lines[key]; dup {
			d.errorf(key, k.Line, "given twice (first on line %d)", first)
			continue
		}
		d.lines[key] = k.Line
		if v.ShortTag() == "!!null" {
			continue // "region:" with nothing after it: not given
		}
		f(d, key, v)
	}
}

func section(fields map[string]field) field {
	return func(d *decoder, name string, n *yaml.Node) { d.mapping(name, n, fields) }
}

// scalar decodes a plain value with set, whose error is the message.
func scalar(set func(string) error) field {
	return func(d *decoder, name string, n *yaml.Node) {
		if n.Kind != yaml.ScalarNode {
			d.fail(name, "want a single value, not a list or mapping")
			return
		}
		if err := set(n.Value); err != nil {
			d.fail(name, "%v", err)
		}
	}
}

func str(p *string) field {
	return scalar(func(s string) error { *p = s; return nil })
}

func secret(p *Secret) field {
	return scalar(func(s string) error { *p = Secret(s); return nil })
}

func duration(p *time.Duration) field {
	return scalar(func(s string) error {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration, like 90s, 30m or 1h", s)
		}
		*p = v
		return nil
	})
}

func list(p *[]string) field {
	return func(d *decoder, name string, n *yaml.Node) {
		if n.Kind != yaml.SequenceNode {
			d.fail(name, "want a list, like [a, b]")
			return
		}
		*p = []string{}
		for i, item := range n.Content {
			item = resolve(item)
			if item.Kind != yaml.ScalarNode || strings.TrimSpace(item.Value) == "" {
				d.errorf(fmt.Sprintf("%s[%d]", name, i), item.Line, "want a non-empty string")
				continue
			}
			*p = append(*p, item.Value)
		}
	}
}

// ParseSize parses a size in bytes: a whole number with an optional K, M, G
// or T suffix, alone or followed by B or iB; all are binary (2G = 2 GiB), as
// partition sizes are.
func ParseSize(s string) (int64, error) {
	num, mult := s, int64(1)
	for i, unit := range []string{"K", "M", "G", "T"} {
		if t, ok := cutUnit(s, unit); ok {
			num, mult = t, 1<<(10*(i+1))
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size, like 512M or 2G", s)
	}
	return n * mult, nil
}

func cutUnit(s, unit string) (string, bool) {
	for _, suffix := range []string{unit + "iB", unit + "B", unit} {
		if t, ok := strings.CutSuffix(s, suffix); ok {
			return t, true
		}
	}
	return s, false
}

var channelName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// check applies the range rules, the rules between fields and the defaults
// that depend on other fields.
func (d *decoder) check(c *Config) {
	s3 := d.checkSource(c.Source)
	if c.Endpoint != "" {
		if err := checkEndpoint(c.Endpoint); err != nil {
			d.fail("endpoint", "%v", err)
		} else if !s3 {
			d.fail("endpoint", "only used with an s3:// source")
		}
	}
	if c.Region != "" && !s3 {
		d.fail("region", "only used with an s3:// source")
	}
	d.checkCredentials(c, s3)
	if !channelName.MatchString(c.Channel) {
		d.fail("channel", "%q is not a channel name (letters, digits, '.', '_' and '-', at most 64)", c.Channel)
	}
	if c.CheckInterval < MinCheckInterval {
		d.fail("check_interval", "%s is less than the minimum of %s", c.CheckInterval, MinCheckInterval)
	}
	if _, given := d.lines["check_jitter"]; !given {
		c.CheckJitter = c.CheckInterval / 10
	} else if c.CheckJitter < 0 || c.CheckJitter > c.CheckInterval {
		d.fail("check_jitter", "%s is outside 0 to check_interval (%s)", c.CheckJitter, c.CheckInterval)
	}
	switch c.Reboot.Policy {
	case PolicyNow, PolicyNextBoot:
		if !c.Reboot.Window.IsZero() {
			d.fail("reboot.window", "only used with policy %s", PolicyWindow)
		}
	case PolicyWindow:
		if c.Reboot.Window.IsZero() {
			d.fail("reboot.window", "missing: policy %s needs a window, like \"02:00-04:00\"", PolicyWindow)
		}
	default:
		d.fail("reboot.policy", "%q is not a policy (want %s, %s or %s)", c.Reboot.Policy, PolicyNow, PolicyWindow, PolicyNextBoot)
	}
	if c.TrialBoots < 1 || c.TrialBoots > MaxTrialBoots {
		d.fail("trial_boots", "%d is outside 1 to %d", c.TrialBoots, MaxTrialBoots)
	}
	if c.Health.Deadline <= 0 {
		d.fail("health.deadline", "%s is not a positive duration", c.Health.Deadline)
	}
	if c.SlotSize < partition.MinSlotSize {
		d.fail("slot_size", "%d bytes is below the minimum of %d MiB", c.SlotSize, partition.MinSlotSize>>20)
	}
	if !path.IsAbs(c.StateDir) {
		d.fail("state_dir", "%q is not an absolute path", c.StateDir)
	}
	c.StateDir = path.Clean(c.StateDir)
	if p := c.Rollout.Pin; p != "" && p != PinCanary && p != PinLate {
		d.fail("rollout.pin", "%q is not a pin (want %s or %s)", p, PinCanary, PinLate)
	}
	if !path.IsAbs(c.Rollout.MachineIDFile) {
		d.fail("rollout.machine_id_file", "%q is not an absolute path", c.Rollout.MachineIDFile)
	}
	d.checkReport(c.Report)
}

// checkReport checks the report section: an s3:// or file:// place, and
// the S3 fields only with s3://.
func (d *decoder) checkReport(r Report) {
	if r.To == "" {
		if r.Endpoint != "" || r.Region != "" || !r.Credentials.IsZero() {
			d.fail("report.to", "missing: where the reports go, like s3://bucket/prefix")
		}
		return
	}
	loc, err := storeurl.Parse(r.To)
	if err != nil {
		d.fail("report.to", "%v", err)
		return
	}
	s3 := loc.Scheme == "s3"
	if !s3 && loc.Scheme != "file" {
		d.fail("report.to", "%q is not s3://bucket/prefix or file:///path", r.To)
		return
	}
	if r.Endpoint != "" {
		if err := checkEndpoint(r.Endpoint); err != nil {
			d.fail("report.endpoint", "%v", err)
		}
	}
	if !s3 && (r.Endpoint != "" || r.Region != "" || !r.Credentials.IsZero()) {
		d.fail("report.to", "endpoint, region and credentials are only used with s3://")
	}
	switch cr := r.Credentials; {
	case cr.IsZero():
	case cr.AccessKeyID == "":
		d.fail("report.credentials.access_key_id", "missing: needed with secret_access_key")
	case cr.SecretAccessKey == "":
		d.fail("report.credentials.secret_access_key", "missing: needed with access_key_id")
	}
}

// checkSource reports whether source is a valid s3:// URL, and reports an
// error when it is not valid at all: the rules the stores open with.
func (d *decoder) checkSource(source string) (s3 bool) {
	if source == "" {
		d.fail("source", "missing: %s", storeurl.Want)
		return false
	}
	loc, err := storeurl.Parse(source)
	if err != nil {
		d.fail("source", "%v", err)
		return false
	}
	return loc.Scheme == "s3"
}

func checkEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("%q is not an http:// or https:// URL", endpoint)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return errors.New("credentials, query and fragment are not allowed in the URL (use credentials:)")
	}
	return nil
}

func (d *decoder) checkCredentials(c *Config, s3 bool) {
	if !c.Credentials.IsZero() {
		cr := c.Credentials
		switch {
		case !s3:
			d.fail("credentials", "only used with an s3:// source")
		case c.CredentialsFile != "":
			d.fail("credentials_file", "give credentials or credentials_file, not both")
		case cr.AccessKeyID == "":
			d.fail("credentials.access_key_id", "missing: needed with secret_access_key")
		case cr.SecretAccessKey == "":
			d.fail("credentials.secret_access_key", "missing: needed with access_key_id")
		}
	}
	if c.CredentialsFile != "" {
		switch {
		case !s3:
			d.fail("credentials_file", "only used with an s3:// source")
		case !path.IsAbs(c.CredentialsFile):
			d.fail("credentials_file", "%q is not an absolute path", c.CredentialsFile)
		}
	}
}
