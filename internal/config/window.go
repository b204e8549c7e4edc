package config

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Policy says when the updater reboots into a freshly armed slot.
type Policy string

const (
	PolicyNow      Policy = "now"       // as soon as the slot is armed
	PolicyWindow   Policy = "window"    // at the next moment inside Reboot.Window
	PolicyNextBoot Policy = "next-boot" // never by itself: the slot is tried at the next boot
)

// Window is a daily span of local time, like 02:00-04:00. It may cross
// midnight (22:00-02:00); Start == End is refused as ambiguous.
type Window struct {
	Start, End time.Duration // since local midnight, whole minutes
}

var windowForm = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$`)

// ParseWindow parses "HH:MM-HH:MM" (24-hour, local time).
func ParseWindow(s string) (Window, error) {
	m := windowForm.FindStringSubmatch(s)
	if m == nil {
		return Window{}, fmt.Errorf("%q is not a window, like \"02:00-04:00\" (local time, 24-hour)", s)
	}
	at := func(h, min string) time.Duration {
		hh, _ := strconv.Atoi(h)
		mm, _ := strconv.Atoi(min)
		return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute
	}
	w := Window{Start: at(m[1], m[2]), End: at(m[3], m[4])}
	if w.Start == w.End {
		return Window{}, fmt.Errorf("%q starts where it ends", s)
	}
	return w, nil
}

// IsZero reports whether no window is set.
func (w Window) IsZero() bool { return w == Window{} }

func (w Window) String() string {
	if w.IsZero() {
		return ""
	}
	return fmt.Sprintf("%02d:%02d-%02d:%02d", int(w.Start.Hours()), int(w.Start.Minutes())%60, int(w.End.Hours()), int(w.End.Minutes())%60)
}

// MarshalText gives the "02:00-04:00" form, for JSON and YAML.
func (w Window) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// Contains reports whether t's local clock time is inside the window.
func (w Window) Contains(t time.Time) bool {
	h, m, s := t.Clock()
	at := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second
	if w.Start < w.End {
		return w.Start <= at && at < w.End
	}
	return at >= w.Start || at < w.End
}

// Next returns t when t is inside the window, else the window's next start
// after t, on t's clock (wall-clock, so a DST change does not shift it).
func (w Window) Next(t time.Time) time.Time {
	if w.Contains(t) {
		return t
	}
	y, mo, d := t.Date()
	h, m := int(w.Start.Hours()), int(w.Start.Minutes())%60
	start := time.Date(y, mo, d, h, m, 0, 0, t.Location())
	if !start.After(t) {
		start = time.Date(y, mo, d+1, h, m, 0, 0, t.Location())
	}
	return start
}
