package containers

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/tree"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/twinroot/twinroot/internal/refusal"
)

// ErrRefused marks a bundle that updater build does not accept; nothing
// was written when it is returned.
var ErrRefused = refusal.New("bundle refused")

// ComposeFile is the name of the compose file in a bundle directory.
const ComposeFile = "compose.yaml"

// supported is every compose attribute twinroot turns into Quadlet keys;
// any other is refused, so a key a user relies on is never silently lost.
var supported = []tree.Path{
	"name", "version",
	"services.*.image",
	"services.*.build", "services.*.build.context", "services.*.build.dockerfile",
	"services.*.command", "services.*.command.[]",
	"services.*.entrypoint", "services.*.entrypoint.[]",
	"services.*.environment", "services.*.environment.*",
	"services.*.env_file", "services.*.env_file.[]", "services.*.env_file.[].path", "services.*.env_file.[].required",
	"services.*.ports", "services.*.ports.[]", "services.*.ports.[].target", "services.*.ports.[].published",
	"services.*.ports.[].protocol", "services.*.ports.[].host_ip", "services.*.ports.[].mode",
	"services.*.volumes", "services.*.volumes.[]", "services.*.volumes.[].type", "services.*.volumes.[].source",
	"services.*.volumes.[].target", "services.*.volumes.[].read_only", "services.*.volumes.[].volume",
	"services.*.volumes.[].bind", "services.*.volumes.[].bind.*", // refused below, with a reason
	"services.*.depends_on", "services.*.depends_on.*", "services.*.depends_on.*.condition",
	"services.*.depends_on.*.required",
	"services.*.healthcheck", "services.*.healthcheck.test", "services.*.healthcheck.test.[]",
	"services.*.healthcheck.interval", "services.*.healthcheck.timeout", "services.*.healthcheck.retries",
	"services.*.healthcheck.start_period",
	"services.*.restart", "services.*.read_only", "services.*.cap_drop", "services.*.cap_drop.[]",
	"services.*.user", "services.*.labels", "services.*.labels.*",
	"volumes", "volumes.*", "volumes.*.labels", "volumes.*.labels.*",
}

// Bundle is a checked compose project: the services a slot image carries.
type Bundle struct {
	Dir      string    `json:"-"`
	Services []Service `json:"services"` // sorted by name
	Volumes  []string  `json:"volumes,omitempty"`
}

// Service is one bundled container, in the terms Quadlet needs.
type Service struct {
	Name       string            `json:"name"`
	Image      string            `json:"image"`              // the reference of the compose file
	ImageID    string            `json:"image_id,omitempty"` // sha256:<config digest>, set by Prepare
	Layers     []Layer           `json:"layers,omitempty"`   // set by Prepare
	Build      *Build            `json:"-"`
	Command    []string          `json:"-"`
	Entrypoint []string          `json:"-"`
	Env        []EnvLine         `json:"-"` // env_file lines, then environment (which wins)
	Ports      []Port            `json:"-"`
	Mounts     []Mount           `json:"-"`
	DependsOn  []Dependency      `json:"depends_on,omitempty"`
	Health     *Health           `json:"-"`
	Healthy    bool              `json:"healthcheck"` // has a health check: active means healthy
	Restart    string            `json:"-"`           // systemd Restart= value
	ReadOnly   bool              `json:"-"`
	CapDrop    []string          `json:"-"`
	User       string            `json:"-"`
	Labels     map[string]string `json:"-"`
	Secrets    []string          `json:"secrets,omitempty"` // secret names its env refers to
}

// Layer is one layer of a service's image.
type Layer struct {
	DiffID string `json:"diff_id"` // sha256 of the uncompressed layer
	// Gzipped is its size compressed as a registry would send it: what a
	// pull-based updater would fetch for it.
	Gzipped int64 `json:"gzipped"`
}

// Unit is the systemd unit Quadlet generates for the service.
func (s Service) Unit() string { return s.Name + ".service" }

// Build is a service built from a Dockerfile at build time.
type Build struct {
	Context    string // absolute
	Dockerfile string // relative to Context
}

// EnvLine is one KEY=VALUE of a service's environment template.
type EnvLine struct {
	Key, Value string
	From       string // where it was written, for errors: "env_file web.env line 3" or "environment"
}

// Port is a published port.
type Port struct {
	HostIP    string
	Published string
	Target    uint32
	Protocol  string
}

// Mount is a named volume mounted into the service.
type Mount struct {
	Volume, Target string
	ReadOnly       bool
}

// Dependency is a depends_on entry.
type Dependency struct {
	Service string `json:"service"`
	Healthy bool   `json:"healthy"` // condition: service_healthy
}

// Health is a compose healthcheck.
type Health struct {
	Test                           []string // exec form
	Shell                          string   // or shell form
	Interval, Timeout, StartPeriod time.Duration
	Retries                        uint64
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// Load reads and checks dir/compose.yaml. Every refusal wraps ErrRefused
// and names the service and the key.
func Load(ctx context.Context, dir string) (*Bundle, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dir, ComposeFile)
	if _, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("%w: %s: no %s in the bundle directory", ErrRefused, dir, ComposeFile)
	}
	if err := checkAnchors(file); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrRefused, ComposeFile, err)
	}
	var unsupported []loader.UnsupportedAttribute
	p, err := loader.LoadWithContext(ctx,
		types.ConfigDetails{WorkingDir: dir, ConfigFiles: []types.ConfigFile{{Filename: file}}},
		func(o *loader.Options) {
			// An env_file is a template rendered on the device; ${...} is
			// resolved there, not from the build host's environment.
			o.SkipResolveEnvironment = true
			o.SkipInterpolation = true
			o.SkipConsistencyCheck = true // checked below, with messages that name the service
			o.ResolvePaths = true
			o.SetProjectName("twinroot", true)
		},
		loader.WithSupportedAttributes(supported, func(u []loader.UnsupportedAttribute) { unsupported = u }))
	if len(unsupported) > 0 {
		return nil, refuseAttribute(unsupported[0])
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrRefused, ComposeFile, oneLine(err.Error()))
	}
	b := &Bundle{Dir: dir}
	for name := range p.Volumes {
		if err := unitValue("volumes", name); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrRefused, ComposeFile, err)
		}
		b.Volumes = append(b.Volumes, name)
	}
	sort.Strings(b.Volumes)
	names := slices.Sorted(maps.Keys(p.Services))
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: %s has no services", ErrRefused, ComposeFile)
	}
	for _, n := range names {
		s, err := convert(dir, p.Services[n], b.Volumes)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: service %s: %v", ErrRefused, ComposeFile, n, err)
		}
		b.Services = append(b.Services, s)
	}
	if err := b.checkDependencies(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrRefused, ComposeFile, err)
	}
	return b, nil
}

// Service returns the named service.
func (b *Bundle) Service(name string) (Service, bool) {
	for _, s := range b.Services {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}

func refuseAttribute(u loader.UnsupportedAttribute) error {
	parts := strings.Split(string(u.Path), ".")
	if len(parts) >= 3 && parts[0] == "services" {
		key := strings.Join(parts[2:], ".")
		return fmt.Errorf("%w: %s: service %s: key %s is not supported by twinroot (see the README's list of compose keys)",
			ErrRefused, ComposeFile, parts[1], strings.ReplaceAll(key, ".[]", "[]"))
	}
	return fmt.Errorf("%w: %s: key %s is not supported by twinroot (only services and volumes)", ErrRefused, ComposeFile, u.Path)
}

func convert(dir string, c types.ServiceConfig, volumes []string) (Service, error) {
	s := Service{Name: c.Name, Image: c.Image, Labels: map[string]string{}}
	if !nameRE.MatchString(s.Name) {
		return s, fmt.Errorf("name must be lower case letters, digits, '.', '_' or '-' (it names a systemd unit)")
	}
	if c.Build != nil {
		df := c.Build.Dockerfile
		if df == "" {
			df = "Dockerfile"
		}
		s.Build = &Build{Context: c.Build.Context, Dockerfile: df}
		if _, err := os.Stat(filepath.Join(s.Build.Context, df)); err != nil {
			return s, fmt.Errorf("build: no %s in %s", df, s.Build.Context)
		}
		if s.Image == "" {
			s.Image = "localhost/" + s.Name + ":twinroot"
		}
	}
	if s.Image == "" {
		return s, fmt.Errorf("needs image or build")
	}
	var err error
	if s.Command, err = literals("command", c.Command); err != nil {
		return s, err
	}
	if s.Entrypoint, err = literals("entrypoint", c.Entrypoint); err != nil {
		return s, err
	}
	for _, ef := range c.EnvFiles {
		lines, err := readEnvFile(ef.Path)
		if err != nil {
			if os.IsNotExist(err) && !bool(ef.Required) {
				continue
			}
			rel, _ := filepath.Rel(dir, ef.Path)
			return s, fmt.Errorf("env_file %s: %v", rel, err)
		}
		s.Env = append(s.Env, lines...)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Environment)) {
		v := c.Environment[k]
		line := EnvLine{Key: k, From: "environment"}
		if v == nil {
			line.Value = "${" + k + "}" // KEY alone: the device's value of KEY
		} else {
			line.Value = *v
		}
		s.Env = append(s.Env, line)
	}
	secrets, err := checkTemplate(s.Env)
	if err != nil {
		return s, err
	}
	s.Secrets = secrets
	for _, p := range c.Ports {
		if p.Mode != "" && p.Mode != "ingress" {
			return s, fmt.Errorf("ports: mode %s is not supported", p.Mode)
		}
		if err := unitValue("ports", p.HostIP+":"+p.Published+"/"+p.Protocol); err != nil {
			return s, err
		}
		s.Ports = append(s.Ports, Port{HostIP: p.HostIP, Published: p.Published, Target: p.Target, Protocol: p.Protocol})
	}
	for _, v := range c.Volumes {
		if v.Type != types.VolumeTypeVolume || v.Source == "" {
			return s, fmt.Errorf("volumes: %s is a %s mount; only named volumes are supported (they live on the data partition)", v.Target, v.Type)
		}
		if !slices.Contains(volumes, v.Source) {
			return s, fmt.Errorf("volumes: volume %s is not declared under the top-level volumes", v.Source)
		}
		if err := unitValue("volumes", v.Target); err != nil {
			return s, err
		}
		s.Mounts = append(s.Mounts, Mount{Volume: v.Source, Target: v.Target, ReadOnly: v.ReadOnly})
	}
	for _, dep := range slices.Sorted(maps.Keys(c.DependsOn)) {
		d := c.DependsOn[dep]
		switch d.Condition {
		case types.ServiceConditionStarted, "":
			s.DependsOn = append(s.DependsOn, Dependency{Service: dep})
		case types.ServiceConditionHealthy:
			s.DependsOn = append(s.DependsOn, Dependency{Service: dep, Healthy: true})
		default:
			return s, fmt.Errorf("depends_on %s: condition %s is not supported (service_started or service_healthy)", dep, d.Condition)
		}
	}
	if h := c.HealthCheck; h != nil && !h.Disable && len(h.Test) > 0 && h.Test[0] != "NONE" {
		s.Health = &Health{Interval: 30 * time.Second, Timeout: 30 * time.Second, Retries: 3}
		test, err := literals("healthcheck.test", h.Test[1:])
		if err != nil {
			return s, err
		}
		switch h.Test[0] {
		case "CMD":
			s.Health.Test = test
		case "CMD-SHELL":
			s.Health.Shell = strings.Join(test, " ")
			if err := unitValue("healthcheck.test", s.Health.Shell); err != nil {
				return s, err
			}
		default:
			return s, fmt.Errorf("healthcheck: test must start with CMD or CMD-SHELL")
		}
		if h.Interval != nil {
			s.Health.Interval = time.Duration(*h.Interval)
		}
		if h.Timeout != nil {
			s.Health.Timeout = time.Duration(*h.Timeout)
		}
		if h.StartPeriod != nil {
			s.Health.StartPeriod = time.Duration(*h.StartPeriod)
		}
		if h.Retries != nil {
			s.Health.Retries = *h.Retries
		}
		s.Healthy = true
	}
	switch r := c.Restart; {
	case r == "", r == "always", r == "unless-stopped":
		// An appliance has nobody to start a service by hand: like balenaOS,
		// a service without a restart policy is restarted.
		s.Restart = "always"
	case r == "no":
		s.Restart = "no"
	case r == "on-failure" || strings.HasPrefix(r, "on-failure:"):
		s.Restart = "on-failure"
	default:
		return s, fmt.Errorf("restart: %q is not a restart policy", r)
	}
	s.ReadOnly = c.ReadOnly
	s.CapDrop = c.CapDrop
	for _, c := range s.CapDrop {
		if err := unitValue("cap_drop", c); err != nil {
			return s, err
		}
	}
	if s.User, err = literal("user", c.User); err != nil {
		return s, err
	}
	if err := unitValue("user", s.User); err != nil {
		return s, err
	}
	if len(s.Entrypoint) == 1 {
		if err := unitValue("entrypoint", s.Entrypoint[0]); err != nil {
			return s, err
		}
	}
	for k, v := range c.Labels {
		if s.Labels[k], err = literal("labels."+k, v); err != nil {
			return s, err
		}
	}
	return s, nil
}

// unitValue refuses what the line of a Quadlet key cannot hold as it is
// written there: a line break would start a key of the compose file's
// making, a trailing backslash would join the next line to it.
func unitValue(key, v string) error {
	if strings.ContainsAny(v, "\n\r") {
		return fmt.Errorf("%s: %q has a line break, which a Quadlet unit cannot carry", key, v)
	}
	if strings.HasSuffix(v, `\`) {
		return fmt.Errorf("%s: %q ends in a backslash, which would join the next line of the Quadlet unit to it", key, v)
	}
	return nil
}

// literals applies literal to each word.
func literals(key string, words []string) ([]string, error) {
	var out []string
	for _, w := range words {
		l, err := literal(key, w)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

var interpolationRE = regexp.MustCompile(`\$\$|\$\{?[A-Za-z_]`)

// literal undoes compose's $$ escape. Compose would fill ${VAR} or $VAR in
// from the build host's environment, which is never what a device should
// run, so such a reference is refused; values per device belong in the
// environment, which is rendered on the device.
func literal(key, s string) (string, error) {
	var bad string
	out := interpolationRE.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if bad == "" {
			bad = m
		}
		return m
	})
	if bad != "" {
		return "", fmt.Errorf("%s: %q would be filled in from the build host's environment; write $$ for a $ the container sees, and put per-device values in environment", key, bad+"...")
	}
	return out, nil
}

// checkDependencies refuses a depends_on that names no service, a
// service_healthy on a service without a health check, and cycles.
func (b *Bundle) checkDependencies() error {
	byName := map[string]Service{}
	for _, s := range b.Services {
		byName[s.Name] = s
	}
	for _, s := range b.Services {
		for _, d := range s.DependsOn {
			dep, ok := byName[d.Service]
			if !ok {
				return fmt.Errorf("service %s: depends_on names %s, which is not a service of the bundle", s.Name, d.Service)
			}
			if d.Healthy && dep.Health == nil {
				return fmt.Errorf("service %s: depends_on %s with condition service_healthy, but %s has no healthcheck", s.Name, d.Service, d.Service)
			}
		}
	}
	const (
		unseen = iota
		visiting
		done
	)
	mark := map[string]int{}
	var path []string
	var visit func(string) error
	visit = func(n string) error {
		switch mark[n] {
		case visiting:
			i := slices.Index(path, n)
			return fmt.Errorf("dependency cycle: %s", strings.Join(append(path[i:], n), " -> "))
		case done:
			return nil
		}
		mark[n] = visiting
		path = append(path, n)
		for _, d := range byName[n].DependsOn {
			if err := visit(d.Service); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		mark[n] = done
		return nil
	}
	for _, s := range b.Services {
		if err := visit(s.Name); err != nil {
			return err
		}
	}
	return nil
}

// oneLine folds compose-go's multi-line messages into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
