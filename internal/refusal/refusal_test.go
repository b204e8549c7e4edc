package refusal

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

type custom struct{}

func (custom) Error() string { return "custom" }
func (custom) Refused() bool { return true }

func TestIs(t *testing.T) {
	errMine := New("mine")
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{io.EOF, false},
		{fmt.Errorf("read: %w", io.EOF), false},
		{errMine, true},
		{fmt.Errorf("slot b: %w", ErrDoesNotFit), true},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", ErrMismatch)), true},
		{Errorf("no sentinel: %d", 3), true},
		{Mark(io.EOF), true},
		{fmt.Errorf("ctx: %w", Mark(io.EOF)), true},
		{errors.Join(io.EOF, errMine), true},
		{custom{}, true},
	} {
		if got := Is(tc.err); got != tc.want {
			t.Errorf("Is(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestWrappingKeepsIdentity(t *testing.T) {
	err := fmt.Errorf("slot a: %w", Errorf("image of %s: %w", "1.2.0", ErrDoesNotFit))
	if !errors.Is(err, ErrDoesNotFit) || errors.Is(err, ErrMismatch) {
		t.Errorf("errors.Is on %v: wrong sentinel", err)
	}
	if got, want := err.Error(), "slot a: image of 1.2.0: image does not fit the slot"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if Mark(nil) != nil {
		t.Error("Mark(nil) != nil")
	}
	if m := Mark(io.EOF); !errors.Is(m, io.EOF) {
		t.Error("Mark lost the wrapped error")
	}
}
