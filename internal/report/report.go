package report

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/twinroot/twinroot/internal/atomicfile"
	"github.com/twinroot/twinroot/internal/rollout"
	"github.com/twinroot/twinroot/internal/source"
)

// Events of a report.
const (
	Applied    = "applied"
	Committed  = "committed"
	Failed     = "failed"
	RolledBack = "rolled-back"
)

// NoHealthCheck is the reason of a rolled-back event whose trial never
// reached its health check (GRUB fell back after a panic, a hang or a
// kernel that did not boot): a silent rollback in the fleet report.
const NoHealthCheck = "its trial boot failed before its health check (a panic, a hang, a kernel that did not boot)"

// Format is the object's format number.
const Format = 1

// idKey keys the device id's HMAC (doc.go). It never changes.
const idKey = "twinroot device id v1"

// IDFile is the random device id of a device without a machine id, in its
// state directory.
const IDFile = "device-id"

// DefaultTimeout bounds one report's write: a store that does not answer
// never holds an update back for longer.
const DefaultTimeout = 10 * time.Second

// Event is one report object (doc.go).
type Event struct {
	Format  int       `json:"format"`
	Device  string    `json:"device"`
	Channel string    `json:"channel"`
	Version string    `json:"version"`
	Serial  uint64    `json:"serial"`
	Event   string    `json:"event"`
	Reason  string    `json:"reason,omitempty"`
	Time    time.Time `json:"time"`
	Running string    `json:"running"`
	Bucket  float64   `json:"bucket"`
}

// Key is where ev goes, relative to the report prefix.
func Key(ev Event) string {
	return path.Join("reports", ev.Channel, ev.Version, ev.Device+".json")
}

// DeviceID is the device's id in reports: from the machine id in
// machineIDFile, else a random one kept in stateDir (doc.go).
func DeviceID(machineIDFile, stateDir string) (string, error) {
	if b, err := os.ReadFile(machineIDFile); err == nil {
		if mac, err := rollout.MachineMAC(idKey, string(b)); err == nil {
			return hex.EncodeToString(mac[:16]), nil
		}
	}
	p := filepath.Join(stateDir, IDFile)
	b, err := os.ReadFile(p)
	if id := strings.TrimSpace(string(b)); err == nil && len(id) == 32 {
		if _, err := hex.DecodeString(id); err == nil {
			return id, nil
		}
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	var raw [16]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return "", err
	}
	if err := atomicfile.Write(p, []byte(id+"\n"), 0o644); err != nil {
		return "", err
	}
	return id, nil
}

// Reporter writes a device's report objects. A nil Reporter writes none.
type Reporter struct {
	Store   source.Store
	Device  string
	Channel string
	Bucket  float64
	Timeout time.Duration // 0: DefaultTimeout
	Log     *slog.Logger
	Now     func() time.Time
}

// Send writes the report of event about version (serial) while the device
// runs running, with reason. It never fails: a report that cannot be
// written within the timeout is logged and dropped, and the update goes on.
func (r *Reporter) Send(ctx context.Context, event, version string, serial uint64, running, reason string) {
	if r == nil || r.Store == nil {
		return
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	ev := Event{Format: Format, Device: r.Device, Channel: r.Channel, Version: version, Serial: serial,
		Event: event, Reason: reason, Time: now().UTC().Truncate(time.Second), Running: running, Bucket: r.Bucket}
	if err := r.send(ctx, ev); err != nil && r.Log != nil {
		r.Log.Warn("report not written; the update goes on", "event", event, "version", version, "error", err)
	}
}

func (r *Reporter) send(ctx context.Context, ev Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := r.Store.Put(ctx, Key(ev), bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("report %s of %s: %w", ev.Event, ev.Version, err)
	}
	return nil
}
