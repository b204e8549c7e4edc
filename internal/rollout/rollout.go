package rollout

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/manifest"
)

// bucketKey keys the bucket's HMAC (doc.go). It never changes.
const bucketKey = "twinroot rollout bucket v1"

// Pins of device.yaml's rollout.pin.
const (
	Canary = config.PinCanary // bucket 0: in as soon as a rollout starts
	Late   = config.PinLate   // bucket 1: in when a rollout is complete
)

// ErrNoMachineID says a device has no machine id to place it in a rollout.
var ErrNoMachineID = errors.New("no machine id")

// MachineMAC is HMAC-SHA256 keyed key over the machine id as doc.go reads
// it. Every value derived from the machine id (the bucket, the device id
// of reports) is one, each with a key of its own, so that none gives the
// machine id or another away.
func MachineMAC(key, machineID string) ([]byte, error) {
	id := strings.ToLower(strings.TrimSpace(machineID))
	if id == "" {
		return nil, ErrNoMachineID
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(id))
	return mac.Sum(nil), nil
}

// Bucket is the device's place in every rollout, in [0, 1) (doc.go).
func Bucket(machineID string) (float64, error) {
	mac, err := MachineMAC(bucketKey, machineID)
	if err != nil {
		return 0, err
	}
	// 53 bits: every value is exact in a float64, and below 1.
	return float64(binary.BigEndian.Uint64(mac)>>11) / (1 << 53), nil
}

// Place is where a device stands in every rollout: its bucket, pinned or
// from its machine id.
type Place struct {
	Bucket float64 `json:"bucket"`
	Pin    string  `json:"pin,omitempty"` // canary or late; empty: from the machine id
}

// PlaceOf places a device: pin when set (canary, late), else the bucket
// of the machine id in idFile. A device without a machine id goes last,
// with the reason.
func PlaceOf(pin, idFile string) (Place, error) {
	switch pin {
	case Canary:
		return Place{Bucket: 0, Pin: pin}, nil
	case Late:
		return Place{Bucket: 1, Pin: pin}, nil
	case "":
	default:
		return Place{Bucket: 1}, fmt.Errorf("rollout pin %q: want %s or %s", pin, Canary, Late)
	}
	if idFile == "" {
		return Place{Bucket: 1, Pin: Late}, fmt.Errorf("%w on a disk that is not the running system's: it goes when a rollout is complete", ErrNoMachineID)
	}
	b, err := os.ReadFile(idFile)
	if err != nil {
		return Place{Bucket: 1, Pin: Late}, fmt.Errorf("%w (%v): the device goes when a rollout is complete", ErrNoMachineID, err)
	}
	bucket, err := Bucket(string(b))
	if err != nil {
		return Place{Bucket: 1, Pin: Late}, fmt.Errorf("%s: %w: the device goes when a rollout is complete", idFile, err)
	}
	return Place{Bucket: bucket}, nil
}

// Share is the part of the fleet, in [0, 1], that r has reached at now
// (doc.go); -1 before it starts. A nil rollout has reached everyone.
func Share(r *manifest.Rollout, now time.Time) float64 {
	if r == nil {
		return 1
	}
	if r.PausedAt != nil {
		now = *r.PausedAt
	}
	if now.Before(r.Start) {
		return -1
	}
	from := r.StartPercent / 100
	d := time.Duration(r.Duration)
	if d <= 0 {
		return 1
	}
	done := float64(now.Sub(r.Start)) / float64(d)
	return math.Min(1, from+(1-from)*done)
}

// Decision is whether a release's rollout has reached a device now.
type Decision struct {
	In     bool    `json:"in"`
	Bucket float64 `json:"bucket"`
	Share  float64 `json:"share"` // reached now; -1: not started
	Paused bool    `json:"paused,omitempty"`
	// At is when the device's turn comes, when it is not in and the
	// rollout is not paused.
	At time.Time `json:"at,omitzero"`
}

// Decide says whether r has reached the device at p at now. started says
// the device has already begun writing the release: a pause does not
// stop it.
func Decide(r *manifest.Rollout, p Place, now time.Time, started bool) Decision {
	share := Share(r, now)
	// A canary is in from the start; a late device when it is complete.
	d := Decision{Bucket: p.Bucket, Share: share, In: share >= 0 && (share >= 1 || p.Bucket == 0 || p.Bucket < share)}
	if r == nil {
		return d
	}
	if r.PausedAt != nil {
		d.Paused = true
		d.In = started
		return d
	}
	if !d.In {
		d.At = turn(r, p.Bucket)
	}
	return d
}

// turn is when r's share passes bucket.
func turn(r *manifest.Rollout, bucket float64) time.Time {
	from := r.StartPercent / 100
	if bucket < from || bucket == 0 {
		return r.Start
	}
	d := time.Duration(r.Duration)
	if bucket >= 1 {
		return r.Start.Add(d)
	}
	// The first whole second the share is above bucket.
	at := r.Start.Add(time.Duration(math.Floor((bucket-from)/(1-from)*float64(d))) + 1)
	return at.Add(time.Second - 1).Truncate(time.Second)
}

// Pause pauses r at now: its share stays what it is.
func Pause(r manifest.Rollout, now time.Time) manifest.Rollout {
	if r.PausedAt == nil {
		t := now.UTC().Truncate(time.Second)
		r.PausedAt = &t
	}
	return r
}

// Resume goes on with a paused r at now, from the share it had reached:
// its start moves later by the time it was paused.
func Resume(r manifest.Rollout, now time.Time) manifest.Rollout {
	if r.PausedAt == nil {
		return r
	}
	if now = now.UTC().Truncate(time.Second); now.After(*r.PausedAt) {
		r.Start = r.Start.Add(now.Sub(*r.PausedAt))
	}
	r.PausedAt = nil
	return r
}
