package config

import (
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	at := func(day, h, m int) time.Time { return time.Date(2025, 3, day, h, m, 0, 0, time.UTC) }
	for _, tc := range []struct {
		window   string
		now      time.Time
		contains bool
		next     time.Time
	}{
		{"02:00-04:00", at(10, 1, 59), false, at(10, 2, 0)},
		{"02:00-04:00", at(10, 2, 0), true, at(10, 2, 0)},
		{"02:00-04:00", at(10, 3, 59), true, at(10, 3, 59)},
		{"02:00-04:00", at(10, 4, 0), false, at(11, 2, 0)},
		{"02:00-04:00", at(10, 23, 0), false, at(11, 2, 0)},
		{"22:00-02:00", at(10, 21, 0), false, at(10, 22, 0)},
		{"22:00-02:00", at(10, 23, 30), true, at(10, 23, 30)},
		{"22:00-02:00", at(11, 1, 0), true, at(11, 1, 0)},
		{"22:00-02:00", at(11, 2, 0), false, at(11, 22, 0)},
		{"00:00-00:30", at(31, 12, 0), false, time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)},
	} {
		w, err := ParseWindow(tc.window)
		if err != nil {
			t.Fatal(err)
		}
		if got := w.String(); got != tc.window {
			t.Errorf("ParseWindow(%q).String() = %q", tc.window, got)
		}
		if got := w.Contains(tc.now); got != tc.contains {
			t.Errorf("%s.Contains(%s) = %v, want %v", w, tc.now.Format("15:04"), got, tc.contains)
		}
		if got := w.Next(tc.now); !got.Equal(tc.next) {
			t.Errorf("%s.Next(%s) = %s, want %s", w, tc.now, got, tc.next)
		}
	}
}

func TestWindowAcrossDST(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("no time zone data (Debian: tzdata): %v", err)
	}
	w, err := ParseWindow("03:30-04:00")
	if err != nil {
		t.Fatal(err)
	}
	// On 2025-03-30 clocks jump from 02:00 to 03:00: the next start is
	// 03:30 on the wall clock, 22.5 hours after 04:00 the day before, not 23.5.
	now := time.Date(2025, 3, 29, 4, 0, 0, 0, berlin)
	got, want := w.Next(now), time.Date(2025, 3, 30, 3, 30, 0, 0, berlin)
	if !got.Equal(want) || got.Sub(now) != 22*time.Hour+30*time.Minute {
		t.Errorf("Next(%s) = %s, want %s", now, got, want)
	}
}
