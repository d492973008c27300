package dispatch_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerdisk/kubectl-containerdisk/plugins/dispatch"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
)

func noPath(string) (string, error) { return "", errors.New("not on PATH") }

// A krew install links only the umbrella onto PATH; its siblings stay in
// the store directory the link points into.
func TestFindResolvesSymlinkedUmbrella(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store", "containerdisk", "v1")
	bin := filepath.Join(dir, "bin")
	for _, d := range []string{store, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"kubectl-containerdisk", "kubectl-containerdisk-build"} {
		if err := os.WriteFile(filepath.Join(store, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(bin, "kubectl-containerdisk")
	if err := os.Symlink(filepath.Join(store, "kubectl-containerdisk"), link); err != nil {
		t.Fatal(err)
	}
	got, err := dispatch.Find("build", link, noPath)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(store, "kubectl-containerdisk-build"); got != want {
		t.Errorf("Find = %s, want %s", got, want)
	}

	// Not beside the umbrella: PATH decides, and its absence is explained.
	onPath := func(name string) (string, error) { return "/usr/local/bin/" + name, nil }
	if got, err := dispatch.Find("push", link, onPath); err != nil || got != "/usr/local/bin/kubectl-containerdisk-push" {
		t.Errorf("Find(push) = %q, %v; want the PATH entry", got, err)
	}
	_, err = dispatch.Find("push", link, noPath)
	if err == nil || !strings.Contains(err.Error(), "kubectl-containerdisk-push") {
		t.Errorf("Find(push) error = %v, want one naming the missing binary", err)
	}
}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		wantCode   int
		wantOut    string
		wantErr    string
		wantStart  []string
		startedSub string
	}{
		{args: nil, wantCode: 0, wantOut: "build    Package disk files"},
		{args: []string{"--help"}, wantCode: 0, wantOut: "push     Publish"},
		{args: []string{"frobnicate"}, wantCode: 2, wantErr: `unknown command "frobnicate"`},
		{args: []string{"--frob"}, wantCode: 2, wantErr: `unknown command "--frob"`},
		{args: []string{"build", "--disk", "a.qcow2", "oci:x"}, wantCode: 7, startedSub: "kubectl-containerdisk-build", wantStart: []string{"--disk", "a.qcow2", "oci:x"}},
		{args: []string{"help", "push"}, wantCode: 7, startedSub: "kubectl-containerdisk-push", wantStart: []string{"--help"}},
		// promote lives in verify's binary.
		{args: []string{"promote", "--to", "r.example/x"}, wantCode: 7, startedSub: "kubectl-containerdisk-verify", wantStart: []string{"promote", "--to", "r.example/x"}},
		{args: []string{"help", "promote"}, wantCode: 7, startedSub: "kubectl-containerdisk-verify", wantStart: []string{"promote", "--help"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			var started string
			var startArgs []string
			lookPath := func(name string) (string, error) { return "/bin/" + name, nil }
			start := func(path string, args []string, _ cli.Streams) int {
				started, startArgs = filepath.Base(path), args
				return 7
			}
			code := dispatch.Run(cli.Streams{Out: &out, ErrOut: &errOut}, tc.args, lookPath, start)
			if code != tc.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tc.wantCode, errOut.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("stdout = %q, want it to contain %q", out.String(), tc.wantOut)
			}
			if !strings.Contains(errOut.String(), tc.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", errOut.String(), tc.wantErr)
			}
			if started != tc.startedSub || !slices.Equal(startArgs, tc.wantStart) {
				t.Errorf("started %q %q, want %q %q", started, startArgs, tc.startedSub, tc.wantStart)
			}
		})
	}
}
