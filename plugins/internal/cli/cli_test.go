package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/disk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/inputerr"
	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/pkg/readlimit"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
)

// quotaError is an input error of a package ExitCode has never heard of: it
// only has the InputError method.
type quotaError struct{ n int }

func (e *quotaError) Error() string    { return fmt.Sprintf("%d images: expected at most 10", e.n) }
func (e *quotaError) InputError() bool { return true }

// notInputError has the method but says no.
type notInputError struct{}

func (notInputError) Error() string    { return "the registry is down" }
func (notInputError) InputError() bool { return false }

func TestExitCode(t *testing.T) {
	_, refErr := target.Parse("UPPER/Case:tag")
	_, archErr := containerdisk.NormalizeArch("riscv64")
	_, _, shardErr := catalog.ParseShard("4/4")
	_, limitErr := readlimit.Read(context.Background(), strings.NewReader("0123456789"), "x.yaml", 4, "a catalog file")
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, ExitOK},
		{"plain error", errors.New("connection refused"), ExitFailed},
		{"context canceled", context.Canceled, ExitFailed},
		{"file not found", &os.PathError{Op: "open", Path: "x", Err: os.ErrNotExist}, ExitFailed},
		{"partial", &PartialError{Failed: []string{"a"}, Total: 2}, ExitFailed},
		{"InputError false", notInputError{}, ExitFailed},
		{"wrapped InputError false", fmt.Errorf("pushing: %w", notInputError{}), ExitFailed},

		{"Usagef", Usagef("--shard %q: expected K/N", "x"), ExitUsage},
		{"inputerr.Error", &inputerr.Error{What: "format", Input: "tar", Expected: "oci or docker"}, ExitUsage},
		{"inputerr.Errorf wrapped", fmt.Errorf("reading catalog: %w", inputerr.Errorf("bad")), ExitUsage},
		{"invalid reference", refErr, ExitUsage},
		{"unknown architecture", archErr, ExitUsage},
		{"shard", shardErr, ExitUsage},
		{"file over its limit", limitErr, ExitUsage},
		{"invalid disk", &disk.InvalidDiskError{Path: "x.img", Reason: "empty", Err: disk.ErrNotDisk}, ExitUsage},
		{"layout", &target.LayoutError{Path: "dir", File: "index.json", Err: errors.New("EOF")}, ExitUsage},
		{"record", &pipeline.DecodeError{Line: 3, Text: "{", Err: errors.New("EOF")}, ExitUsage},
		{"release", &pipeline.ReleaseDecodeError{DecodeError: pipeline.DecodeError{Line: 1, Text: "x", Err: errors.New("EOF")}}, ExitUsage},
		{"record field", &pipeline.FieldError{Line: 2, Field: "name", Value: "../x", Expected: "a path component"}, ExitUsage},
		{"new type by interface", &quotaError{n: 11}, ExitUsage},
		{"new type wrapped", fmt.Errorf("mirror: %w", &quotaError{n: 11}), ExitUsage},
		{"joined", errors.Join(errors.New("one failed"), &quotaError{n: 12}), ExitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want != ExitOK && tc.err == nil {
				t.Fatal("the producer returned no error")
			}
			if got := ExitCode(tc.err); got != tc.want {
				t.Errorf("ExitCode(%T %v) = %d, want %d", tc.err, tc.err, got, tc.want)
			}
		})
	}
}
