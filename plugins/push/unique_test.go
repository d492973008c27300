package push

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"oras.land/oras-go/v2/content/oci"

	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
	"github.com/containerdisk/kubectl-containerdisk/internal/testregistry"
	"github.com/containerdisk/kubectl-containerdisk/internal/testupstream"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
)

// minute is when both pushes run: a new upstream build published within the
// same minute as the one before it.
var minute = time.Date(2026, 12, 3, 13, 27, 0, 0, time.UTC)

const stampTag = "42-2612031327"

// pushAt runs push with the clock stopped at minute and returns its
// records, stderr and exit code.
func pushAt(t *testing.T, stdin string, args ...string) ([]pipeline.Record, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	streams := cli.Streams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}
	code := cli.Run(context.Background(), streams, "kubectl containerdisk push", args,
		func(s cli.Streams) *cobra.Command { return newCommand(s, func() time.Time { return minute }) })
	var recs []pipeline.Record
	if err := pipeline.Decode(&out, func(r pipeline.Record, invalid error) error {
		recs = append(recs, r)
		return invalid
	}); err != nil {
		t.Fatalf("push printed %q: %v", out.String(), err)
	}
	return recs, errOut.String(), code
}

// resolve returns the digest a tag of repository repo names.
func resolve(t *testing.T, reg *testregistry.Registry, repo, tag string) string {
	t.Helper()
	ref, err := target.Parse(reg.Host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	r, err := target.OpenRepository(ref, target.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.Resolve(context.Background(), tag)
	if err != nil {
		t.Fatalf("resolving %s:%s: %v", repo, tag, err)
	}
	return d.Digest.String()
}

func TestFocusNeverMovesTheTimestampTag(t *testing.T) {
	reg := testregistry.New(t)
	site := testupstream.Serve(t)
	if err := site.Publish("fedora", "42", "1.1", "amd64"); err != nil {
		t.Fatal(err)
	}
	args := []string{"--mirror", "*=" + site.URL(), "--focus", "fedora:42", "--dry-run=false", "-o", "json",
		"--to", reg.Host + "/containerdisks", "--cache-dir", t.TempDir()}
	first, stderr, code := pushAt(t, "", args...)
	if code != 0 || len(first) != 1 || first[0].Digest == "" {
		t.Fatalf("first push: exit %d, records %+v\n%s", code, first, stderr)
	}

	// Upstream publishes build 1.2 within the same minute.
	if err := site.Publish("fedora", "42", "1.2", "amd64"); err != nil {
		t.Fatal(err)
	}
	second, stderr, code := pushAt(t, "", args...)
	if code != 0 || len(second) != 1 || second[0].Push == nil {
		t.Fatalf("second push: exit %d, records %+v\n%s", code, second, stderr)
	}
	d1, d2 := first[0].Digest, second[0].Digest
	if d1 == d2 {
		t.Fatalf("builds 1.1 and 1.2 have one digest %s", d1)
	}
	want := map[string]string{stampTag: d1, "42-1.1": d1, "42-1.2": d2, "42": d2, "latest": d2}
	for tag, d := range want {
		if got := resolve(t, reg, "containerdisks/fedora", tag); got != d {
			t.Errorf("fedora:%s names %s, want %s", tag, got, d)
		}
	}
	if got := second[0].Push.Kept; len(got) != 1 || got[0] != stampTag {
		t.Errorf("record says kept %v, want [%s]", got, stampTag)
	}
	if !strings.Contains(stderr, fmt.Sprintf("Warning: kept %s/containerdisks/fedora:%s on %s", reg.Host, stampTag, d1)) {
		t.Errorf("stderr has no warning that %s was kept:\n%s", stampTag, stderr)
	}
}

// layoutImage builds a one-architecture image into a new layout, tagged 42,
// and returns the record build prints for it.
func layoutImage(t *testing.T, seed uint64) string {
	t.Helper()
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	if err := testdisk.WriteRaw(disk, 1<<20, seed); err != nil {
		t.Fatal(err)
	}
	store, err := oci.New(filepath.Join(dir, "layout"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := containerdisk.Build(ctx, store, []containerdisk.Disk{{Architecture: "amd64", Path: disk}}, containerdisk.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Tag(ctx, res.Root, "42"); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(pipeline.Record{Reference: "oci:" + filepath.Join(dir, "layout") + ":42", Digest: res.Root.Digest.String(),
		Name: "fedora", Version: "42", Tags: []string{"42-1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func TestRecordsNeverMoveTheTimestampTag(t *testing.T) {
	reg := testregistry.New(t)
	args := []string{"--dry-run=false", "-o", "json", "--to", reg.Host + "/containerdisks"}
	first, stderr, code := pushAt(t, layoutImage(t, 1), args...)
	if code != 0 || len(first) != 1 {
		t.Fatalf("first push: exit %d, records %+v\n%s", code, first, stderr)
	}
	second, stderr, code := pushAt(t, layoutImage(t, 2), args...)
	if code != 0 || len(second) != 1 {
		t.Fatalf("second push: exit %d, records %+v\n%s", code, second, stderr)
	}
	d1, d2 := first[0].Digest, second[0].Digest
	// The record's own unique tag pins too; the version moves.
	for tag, d := range map[string]string{stampTag: d1, "42-1.1": d1, "42": d2} {
		if got := resolve(t, reg, "containerdisks/fedora", tag); got != d {
			t.Errorf("fedora:%s names %s, want %s", tag, got, d)
		}
	}
	if got := second[0].Push.Kept; len(got) != 2 {
		t.Errorf("record says kept %v, want %s and 42-1.1", got, stampTag)
	}
	if strings.Count(stderr, "Warning: kept") != 2 {
		t.Errorf("stderr: want two warnings of kept tags:\n%s", stderr)
	}
}
