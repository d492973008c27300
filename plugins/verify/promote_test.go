package verify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"oras.land/oras-go/v2/registry/remote"

	"github.com/containerdisk/kubectl-containerdisk/internal/testcluster"
	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
	"github.com/containerdisk/kubectl-containerdisk/internal/testregistry"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/verify"
)

func TestMain(m *testing.M) {
	os.Setenv("OTEL_TRACES_EXPORTER", "none")
	testcluster.Main(m)
}

// stage builds an image into repo of the registry, tags it, and returns
// its push record.
func stage(t *testing.T, reg *testregistry.Registry, name, version string, seed uint64) pipeline.Record {
	t.Helper()
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "disk.qcow2")
	if err := testdisk.WriteQCOW2(p, 1<<20, seed, false); err != nil {
		t.Fatal(err)
	}
	repo, err := remote.NewRepository(reg.Host + "/staging/" + name)
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	res, err := containerdisk.Build(ctx, repo, []containerdisk.Disk{{Architecture: "amd64", Path: p}}, containerdisk.Options{Created: time.Unix(0, 0), TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	tags := []string{version + "-2611231200", version}
	for _, tag := range tags {
		if err := repo.Tag(ctx, res.Root, tag); err != nil {
			t.Fatal(err)
		}
	}
	return pipeline.Record{
		Reference: reg.Host + "/staging/" + name + ":" + version, Digest: res.Root.Digest.String(),
		Name: name, Version: version, Tags: tags, Latest: true,
	}
}

func runPromote(t *testing.T, stdin []pipeline.Record, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var in, out, errOut bytes.Buffer
	enc := pipeline.NewEncoder(&in)
	for _, r := range stdin {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	code = cli.Run(context.Background(), cli.Streams{In: &in, Out: &out, ErrOut: &errOut}, "kubectl containerdisk verify", append([]string{"promote"}, args...), verify.NewCommand)
	return code, out.String(), errOut.String()
}

func TestPromote(t *testing.T) {
	reg := testregistry.New(t)
	passed := stage(t, reg, "fedora", "42", 1)
	passed.Verify = &pipeline.Verify{Passed: true, Results: []pipeline.VerifyResult{{Arch: "amd64", Mode: "local", Phase: "Checked", Passed: true}}}
	failed := stage(t, reg, "debian", "13", 2)
	failed.Verify = &pipeline.Verify{Passed: false, Results: []pipeline.VerifyResult{{Arch: "amd64", Mode: "local", Phase: "Booted", Error: "no marker on the console"}}}
	unverified := stage(t, reg, "ubuntu", "24.04", 3)
	// The staging tag moves on after verification: promote copies the
	// digest that was verified, not what the tag says now.
	moved := stage(t, reg, "fedora", "42", 4)
	if moved.Digest == passed.Digest {
		t.Fatal("restaging gave the same digest")
	}

	to := reg.Host + "/prod"
	code, out, errOut := runPromote(t, []pipeline.Record{passed, failed, unverified}, "--to", to)
	if code != 1 || !strings.Contains(errOut, "Would promote "+passed.Reference) || !strings.Contains(errOut, "Dry run: nothing was written") {
		t.Fatalf("dry run: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	prod, _ := remote.NewRepository(to + "/fedora")
	prod.PlainHTTP = true
	if _, err := prod.Resolve(context.Background(), "42"); err == nil {
		t.Fatal("a dry run promoted fedora:42")
	}

	code, out, errOut = runPromote(t, []pipeline.Record{passed, failed, unverified}, "--to", to, "--dry-run=false", "-o", "json")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (two not promoted); stderr %q", code, errOut)
	}
	for _, want := range []string{
		"debian:13: it failed verification on amd64: no marker on the console",
		"ubuntu:24.04: it was not verified",
		"2 of 3 items failed",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q lacks %q", errOut, want)
		}
	}
	var recs []pipeline.Record
	if err := pipeline.Decode(strings.NewReader(out), func(r pipeline.Record, invalid error) error { recs = append(recs, r); return invalid }); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0].Reference != to+"/fedora:latest" || recs[0].Push == nil || !slices.Equal(recs[0].Push.Tagged, []string{"42-2611231200", "42", "latest"}) {
		b, _ := json.Marshal(recs)
		t.Fatalf("records = %s", b)
	}
	for _, tag := range []string{"42", "42-2611231200", "latest"} {
		d, err := prod.Resolve(context.Background(), tag)
		if err != nil || d.Digest.String() != passed.Digest {
			t.Errorf("prod fedora:%s = %v, %v; want the verified %s", tag, d.Digest, err, passed.Digest)
		}
	}
	for _, name := range []string{"debian", "ubuntu"} {
		r, _ := remote.NewRepository(to + "/" + name)
		r.PlainHTTP = true
		if _, err := r.Resolve(context.Background(), "latest"); err == nil {
			t.Errorf("%s was promoted", name)
		}
	}

	// Promoting again sends nothing.
	reg.ResetStats()
	code, _, errOut = runPromote(t, []pipeline.Record{passed}, "--to", to, "--dry-run=false")
	if st := reg.Stats(); code != 0 || st.BlobPut+st.BlobPost+st.ManifestPut != 0 {
		t.Errorf("second promote: exit %d, stats %+v, stderr %q", code, st, errOut)
	}
}

func TestPromoteUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "expected --to PREFIX"},
		{[]string{"--to", "r.example/x:tag"}, "has a tag"},
	} {
		code, _, errOut := runPromote(t, []pipeline.Record{{Reference: "r.example/a:1"}}, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("promote %q: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}
