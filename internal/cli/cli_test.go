package cli

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/twinroot/twinroot/internal/config"
	"github.com/twinroot/twinroot/internal/health"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/partition"
	"github.com/twinroot/twinroot/internal/refusal"
)

// The exit code comes from the error itself: a refusal is marked where it
// is made, so no package needs to be listed here for its code to be right.
func TestExitCode(t *testing.T) {
	_, cfgErr := config.Parse([]byte("source: s3://bucket/prefix\nchannel: stable\ncheck_interval: often\n"))
	if cfgErr == nil {
		t.Fatal("config.Parse accepted a bad check_interval")
	}
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, ExitOK},
		{"I/O", fmt.Errorf("write slot b: %w", io.ErrShortWrite), ExitError},
		{"usage", UsageError{errors.New("--reboot soon")}, ExitUsage},
		{"cobra usage", errors.New(`unknown command "frob" for "updater"`), ExitUsage},
		{"device.yaml field", fmt.Errorf("load: %w", cfgErr), ExitRefused},
		{"manifest rule", fmt.Errorf("latest.json: %w", manifest.ErrExpired), ExitRefused},
		{"shared sentinel", fmt.Errorf("slot b: %w", refusal.ErrDoesNotFit), ExitRefused},
		{"disk check", fmt.Errorf("%w: /dev/sda", partition.ErrHoldsData), ExitRefused},
		{"no sentinel", refusal.Errorf("serial 3 is below min_serial 4"), ExitRefused},
		{"health gate", fmt.Errorf("trial: %w", health.ErrUnhealthy), ExitUnhealthy},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("%s: ExitCode(%v) = %d, want %d", tc.name, tc.err, got, tc.want)
		}
	}
}
