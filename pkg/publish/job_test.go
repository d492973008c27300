package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"oras.land/oras-go/v2/content/oci"

	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

// upstreamGroup writes one qcow2 per architecture, as an upstream build
// seed publishes them, and returns fedora:42 with the unique tag 42-1.1.
func upstreamGroup(t *testing.T, seed uint64, arches ...string) catalog.Group {
	t.Helper()
	g := catalog.Group{Name: "fedora", Version: "42"}
	dir := t.TempDir()
	for i, arch := range arches {
		p := filepath.Join(dir, arch+".qcow2")
		if err := testdisk.WriteQCOW2(p, 1<<20, seed*10+uint64(i), false); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(data)
		g.Releases = append(g.Releases, catalog.Release{
			Name: "fedora", Version: "42", Arch: arch, URL: "file://" + p,
			Checksum: containerdisk.Checksum{Algorithm: "sha256", Hex: hex.EncodeToString(h[:])},
			Tags:     []string{"42-1.1"}, Stable: true, Latest: true,
		})
	}
	return g
}

// events records a job's events by kind, as a plugin receives them.
type events struct {
	mu    sync.Mutex
	kinds []string
	kept  []string
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.kinds = append(e.kinds, ev.Kind)
	if ev.Kind == EventKept {
		e.kept = append(e.kept, ev.Transfer.Tag)
	}
}

func newJob(t *testing.T, prefix string, compare bool, now time.Time, ev *events) *Job {
	t.Helper()
	ref, err := target.Parse(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return &Job{
		Builder: &Builder{
			Client:   upstream.NewClient(upstream.Options{}),
			CacheDir: filepath.Join(filepath.Dir(ref.Path), "cache"),
			Options:  containerdisk.Options{TempDir: t.TempDir()},
		},
		Prefix:  ref,
		Compare: compare,
		Now:     now,
		Workers: 2,
		OnEvent: ev.add,
	}
}

func resolveTag(t *testing.T, dir, tag string) string {
	t.Helper()
	store, err := oci.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := store.Resolve(context.Background(), tag)
	if err != nil {
		return ""
	}
	return d.Digest.String()
}

// A publishing job compares, builds only what changed, and tags last: a dry
// run creates nothing, a second run finds everything up to date, and a new
// upstream build moves the moving tags but never the unique one.
func TestJobPublishes(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	layout := filepath.Join(root, "out")
	repo := filepath.Join(layout, "fedora")
	first := time.Date(2026, 12, 3, 13, 27, 0, 0, time.UTC)
	g := upstreamGroup(t, 1, "amd64", "arm64")

	// Dry run: what would be pushed, and nothing written.
	ev := &events{}
	job := newJob(t, "oci:"+layout, true, first, ev)
	job.DryRun = true
	out := job.Run(ctx, []catalog.Group{g})
	if out[0].Status != StatusWouldPush || out[0].Changes != "not published yet" {
		t.Fatalf("dry run: %+v", out[0])
	}
	if want := []string{"42-2612031327", "42-1.1", "42", "latest"}; !slices.Equal(out[0].Record.Tags, want) {
		t.Errorf("dry run tags = %q, want %q", out[0].Record.Tags, want)
	}
	if _, err := os.Stat(layout); !os.IsNotExist(err) {
		t.Errorf("the dry run created %s (%v)", layout, err)
	}

	// The real run builds and tags.
	ev = &events{}
	out = newJob(t, "oci:"+layout, true, first, ev).Run(ctx, []catalog.Group{g})
	if out[0].Status != StatusPushed || out[0].Err != nil {
		t.Fatalf("publish: %+v", out[0])
	}
	if want := []string{EventBuilding, EventDone}; !slices.Equal(ev.kinds, want) {
		t.Errorf("events = %q, want %q", ev.kinds, want)
	}
	digest := out[0].Record.Digest
	for _, tag := range []string{"42-2612031327", "42-1.1", "42", "latest"} {
		if got := resolveTag(t, repo, tag); got != digest {
			t.Errorf("tag %s names %q, want %s", tag, got, digest)
		}
	}
	if len(out[0].Record.Images) != 2 {
		t.Errorf("record has %d images, want 2", len(out[0].Record.Images))
	}

	// Nothing changed upstream: nothing is built.
	ev = &events{}
	out = newJob(t, "oci:"+layout, true, first.Add(time.Hour), ev).Run(ctx, []catalog.Group{g})
	if out[0].Status != StatusUpToDate || out[0].Record.Digest != digest {
		t.Fatalf("second run: %+v", out[0])
	}
	if want := []string{EventUpToDate}; !slices.Equal(ev.kinds, want) {
		t.Errorf("events = %q, want %q", ev.kinds, want)
	}

	// A rebuild upstream that kept its build id: 42 and latest move, the
	// unique 42-1.1 stays on the image it named.
	g2 := upstreamGroup(t, 2, "amd64", "arm64")
	ev = &events{}
	out = newJob(t, "oci:"+layout, true, first.Add(2*time.Hour), ev).Run(ctx, []catalog.Group{g2})
	if out[0].Status != StatusPushed {
		t.Fatalf("rebuild: %+v", out[0])
	}
	newDigest := out[0].Record.Digest
	if newDigest == digest {
		t.Fatal("the rebuild has the old digest")
	}
	if got := resolveTag(t, repo, "42-1.1"); got != digest {
		t.Errorf("unique tag 42-1.1 names %s, want it kept on %s", got, digest)
	}
	for _, tag := range []string{"42-2612031527", "42", "latest"} {
		if got := resolveTag(t, repo, tag); got != newDigest {
			t.Errorf("tag %s names %q, want %s", tag, got, newDigest)
		}
	}
	if !slices.Equal(ev.kept, []string{"42-1.1"}) || !slices.Equal(out[0].Record.Push.Kept, []string{"42-1.1"}) {
		t.Errorf("kept: events %q, record %q, want 42-1.1", ev.kept, out[0].Record.Push.Kept)
	}
	if slices.Contains(out[0].Record.Tags, "42-1.1") {
		t.Errorf("record tags %q list the kept tag", out[0].Record.Tags)
	}
}

// A building job (build) tags each group with its version only and leaves
// the unique tags in the record for push; a group that cannot be built
// fails alone, with nothing created for it.
func TestJobBuilds(t *testing.T) {
	ctx := context.Background()
	layout := filepath.Join(t.TempDir(), "out")
	good := upstreamGroup(t, 3, "amd64")
	bad := catalog.Group{Name: "../escape", Version: "1", Releases: []catalog.Release{{Name: "../escape", Version: "1", Arch: "amd64"}}}
	ev := &events{}
	out := newJob(t, "oci:"+layout, false, time.Now(), ev).Run(ctx, []catalog.Group{good, bad})
	if out[0].Status != StatusBuilt || out[0].Err != nil {
		t.Fatalf("build: %+v", out[0])
	}
	rec := out[0].Record
	if !slices.Equal(rec.Tags, []string{"42-1.1"}) || !rec.Latest || rec.Metadata == nil {
		t.Errorf("record = %+v, want tags [42-1.1], latest and metadata", rec)
	}
	if want := "oci:" + filepath.Join(layout, "fedora") + ":42"; rec.Reference != want {
		t.Errorf("reference = %q, want %q", rec.Reference, want)
	}
	repo := filepath.Join(layout, "fedora")
	if got := resolveTag(t, repo, "42"); got != rec.Digest {
		t.Errorf("42 names %q, want %s", got, rec.Digest)
	}
	if got := resolveTag(t, repo, "42-1.1"); got != "" {
		t.Errorf("build wrote the unique tag 42-1.1 (%s): push writes it", got)
	}
	if out[1].Status != StatusFailed || out[1].Err == nil || out[1].Record.Error == "" {
		t.Errorf("bad group: %+v, want failed", out[1])
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(layout), "escape")); !os.IsNotExist(err) {
		t.Errorf("the bad group created something outside the layout (%v)", err)
	}
}

// An interrupted job marks the groups it did not start as failed with the
// context's error, and builds none of them.
func TestJobInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	layout := filepath.Join(t.TempDir(), "out")
	g := upstreamGroup(t, 4, "amd64")
	out := newJob(t, "oci:"+layout, true, time.Now(), &events{}).Run(ctx, []catalog.Group{g, g})
	for i, o := range out {
		if o.Status != StatusFailed || o.Err != context.Canceled || o.Record.Name != "fedora" {
			t.Errorf("group %d: %+v, want failed with %v", i, o, context.Canceled)
		}
	}
	if _, err := os.Stat(layout); !os.IsNotExist(err) {
		t.Errorf("an interrupted job created %s (%v)", layout, err)
	}
}
