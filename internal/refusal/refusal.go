package refusal

import (
	"errors"
	"fmt"
)

// Shared sentinels: one per meaning, wherever the check is made.
var (
	ErrDoesNotFit = New("image does not fit the slot")
	ErrMismatch   = New("bytes differ from what was signed")
)

// Refusal is what an error type implements to be a refusal without this
// package's help; errors.As finds it anywhere in a chain of wrapped
// errors.
type Refusal interface {
	error
	Refused() bool
}

// sentinel is a refusal compared by identity, for errors.Is.
type sentinel struct{ msg string }

func (s *sentinel) Error() string { return s.msg }
func (*sentinel) Refused() bool   { return true }

// New returns a sentinel refusal: errors wrapping it are refusals, and
// errors.Is finds it as any other sentinel.
func New(msg string) error { return &sentinel{msg} }

// marked is an error made a refusal where it was made.
type marked struct{ err error }

func (m marked) Error() string { return m.err.Error() }
func (m marked) Unwrap() error { return m.err }
func (marked) Refused() bool   { return true }

// Errorf formats a refusal that has no sentinel of its own; %w works as in
// fmt.Errorf.
func Errorf(format string, a ...any) error { return marked{fmt.Errorf(format, a...)} }

// Mark makes err a refusal; nil stays nil.
func Mark(err error) error {
	if err == nil || Is(err) {
		return err
	}
	return marked{err}
}

// Is reports whether err, or an error it wraps, is a refusal.
func Is(err error) bool {
	var r Refusal
	return errors.As(err, &r) && r.Refused()
}
