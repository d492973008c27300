package inputerr_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/containerdisk/kubectl-containerdisk/pkg/inputerr"
)

func TestError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
		is   bool
	}{
		{&inputerr.Error{What: "shard", Input: "4/4", Expected: "K/N with 0 <= K < N"}, `shard "4/4": expected K/N with 0 <= K < N`, true},
		{inputerr.Errorf("--to %q: %w", "x", io.EOF), `--to "x": EOF`, true},
		{fmt.Errorf("reading: %w", inputerr.Errorf("bad")), "reading: bad", true},
		{io.EOF, "EOF", false},
		{nil, "", false},
	} {
		if tc.err != nil && tc.err.Error() != tc.want {
			t.Errorf("Error() = %q, want %q", tc.err.Error(), tc.want)
		}
		if got := inputerr.Is(tc.err); got != tc.is {
			t.Errorf("Is(%v) = %v, want %v", tc.err, got, tc.is)
		}
	}
	if !errors.Is(inputerr.Errorf("--to: %w", io.EOF), io.EOF) {
		t.Error("Errorf does not wrap its %w operand")
	}
}

func ExampleError() {
	err := &inputerr.Error{What: "unknown format", Input: "tar", Expected: "oci or docker"}
	fmt.Println(err, inputerr.Is(fmt.Errorf("building: %w", err)))
	// Output: unknown format "tar": expected oci or docker true
}
