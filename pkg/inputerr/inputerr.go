// Package inputerr holds the one error for input of the wrong form: a flag,
// an argument, a file or a record that the user can fix. The core returns it
// (or any error with an InputError method) without knowing about commands,
// and a command turns it into exit code 2 by asking Is.
package inputerr

import (
	"errors"
	"fmt"
)

// Error reports input of the wrong form. Either Err holds the whole message,
// or What, Input and Expected make it: `What "Input": expected Expected`.
type Error struct {
	// What names the input, e.g. "shard" or "unknown architecture".
	What string
	// Input is what was given.
	Input string
	// Expected says what would have been accepted.
	Expected string
	// Err, when set, is the message; the fields above are then unused.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return fmt.Sprintf("%s %q: expected %s", e.What, e.Input, e.Expected)
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// InputError reports that the error is the input's.
func (e *Error) InputError() bool { return true }

// Errorf returns an Error with a formatted message; %w wraps as in fmt.Errorf.
func Errorf(format string, args ...any) error {
	return &Error{Err: fmt.Errorf(format, args...)}
}

// Is reports whether err, or an error it wraps, is the input's: one that has
// an InputError method returning true. Typed errors of other packages
// (an invalid reference, a record that does not decode) mark themselves so by
// that method instead of being listed here.
func Is(err error) bool {
	var in interface{ InputError() bool }
	return errors.As(err, &in) && in.InputError()
}
