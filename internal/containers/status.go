package containers

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/twinroot/twinroot/internal/health"
)

// ReadBundle reads the bundle a slot image carries under root ("/" on a
// device). An image without services gives an empty bundle.
func ReadBundle(root string) (*Bundle, error) {
	b, err := os.ReadFile(filepath.Join(root, BundleDir, BundleFile))
	if errors.Is(err, os.ErrNotExist) {
		return &Bundle{}, nil
	}
	if err != nil {
		return nil, err
	}
	var bundle Bundle
	if err := json.Unmarshal(b, &bundle); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(BundleDir, BundleFile), err)
	}
	return &bundle, nil
}

// Status is what a device shows of one bundled service.
type Status struct {
	Service  string `json:"service"`
	Unit     string `json:"unit"`
	State    string `json:"state"`     // systemd's ActiveState: active, activating, failed, ...
	SubState string `json:"sub_state"` // running, start, auto-restart, ...
	Image    string `json:"image"`
	ImageID  string `json:"image_id"`
	Health   string `json:"health"`   // healthy, unhealthy, starting; none without a health check
	Restarts int    `json:"restarts"` // systemd's NRestarts since boot
	Required bool   `json:"required"` // named by health.containers: gates a trial's commit
}

// Inspector asks systemd and podman about the running services.
type Inspector struct {
	Systemctl string // default "systemctl"
	Podman    string // default "podman"
}

func (in Inspector) systemctl() string { return cmp.Or(in.Systemctl, "systemctl") }
func (in Inspector) podman() string    { return cmp.Or(in.Podman, "podman") }

// Status reports every service of the bundle.
func (in Inspector) Status(ctx context.Context, b *Bundle, required []string) ([]Status, error) {
	var out []Status
	for _, s := range b.Services {
		st := Status{Service: s.Name, Unit: s.Unit(), Image: s.Image, ImageID: s.ImageID, Health: "none",
			Required: slices.Contains(required, s.Name)}
		props, err := in.unit(ctx, s.Unit())
		if err != nil {
			return nil, err
		}
		st.State, st.SubState = props["ActiveState"], props["SubState"]
		st.Restarts, _ = strconv.Atoi(props["NRestarts"])
		if s.Healthy {
			st.Health = in.health(ctx, s.Name)
		}
		out = append(out, st)
	}
	return out, nil
}

func (in Inspector) unit(ctx context.Context, unit string) (map[string]string, error) {
	b, err := exec.CommandContext(ctx, in.systemctl(), "show", unit, "--property=ActiveState,SubState,NRestarts").Output()
	if err != nil {
		return nil, fmt.Errorf("systemctl show %s: %w", unit, err)
	}
	props := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			props[k] = v
		}
	}
	return props, nil
}

// health is the container's health status as podman last recorded it, or
// "unknown" when there is no such container (it is not running).
func (in Inspector) health(ctx context.Context, name string) string {
	cmd := exec.CommandContext(ctx, in.podman(), "--storage-opt=additionalimagestore="+StoreDir,
		"container", "inspect", "--format", "{{json .State}}", name)
	b, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	var st struct {
		Health *struct{ Status string }
		// podman before 4.0 called it Healthcheck
		Healthcheck *struct{ Status string }
	}
	if json.Unmarshal(bytes.TrimSpace(b), &st) != nil {
		return "unknown"
	}
	switch {
	case st.Health != nil && st.Health.Status != "":
		return st.Health.Status
	case st.Healthcheck != nil && st.Healthcheck.Status != "":
		return st.Healthcheck.Status
	}
	return "starting"
}

// Check is the health gate's check of a required service: its unit is
// active (with Notify=healthy that means its first health check passed)
// and, when it has a health check, podman last found it healthy.
func (in Inspector) Check(ctx context.Context, b *Bundle, name string) (bool, string) {
	s, ok := b.Service(name)
	if !ok {
		return false, "not a service of this image's bundle"
	}
	props, err := in.unit(ctx, s.Unit())
	if err != nil {
		return false, err.Error()
	}
	state := props["ActiveState"] + "/" + props["SubState"]
	if props["ActiveState"] != "active" {
		return false, state
	}
	if !s.Healthy {
		return true, state
	}
	h := in.health(ctx, s.Name)
	return h == "healthy", state + ", " + h
}

// Probes are the health gate's checks of the required services.
func (in Inspector) Probes(b *Bundle, required []string) []health.Probe {
	var ps []health.Probe
	for _, name := range required {
		ps = append(ps, health.Probe{Name: "container " + name, Check: func(ctx context.Context) (bool, string) {
			return in.Check(ctx, b, name)
		}})
	}
	return ps
}
