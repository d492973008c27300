package target_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/content/oci"

	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
)

// closeLayout closes what OpenLayout returned, when it can be closed.
func closeLayout(t *testing.T, s any) {
	t.Helper()
	if c, ok := s.(io.Closer); ok {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}
}

// pushImage pushes a small image whose layer is data and tags it.
func pushImage(ctx context.Context, s oras.Target, data []byte, tag string) (ocispec.Descriptor, error) {
	layer := content.NewDescriptorFromBytes(ocispec.MediaTypeImageLayer, data)
	if err := s.Push(ctx, layer, bytes.NewReader(data)); err != nil {
		return ocispec.Descriptor{}, err
	}
	root, err := oras.PackManifest(ctx, s, oras.PackManifestVersion1_1, "application/vnd.example+type", oras.PackManifestOptions{Layers: []ocispec.Descriptor{layer}})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return root, s.Tag(ctx, root, tag)
}

// TestLayoutConcurrentWriters writes images into one layout from writers
// that each opened it, as concurrent builds do, while a reader parses
// index.json in a loop: every tag must be there at the end, and index.json
// must always parse.
func TestLayoutConcurrentWriters(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "layout")
	const writers, images = 6, 5

	// A reader that parses index.json as often as it can until the
	// writers are done.
	done := make(chan struct{})
	var reads, bad int
	var firstBad string
	var readerWG sync.WaitGroup
	readerWG.Add(1)
	go func() {
		defer readerWG.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			data, err := os.ReadFile(filepath.Join(dir, "index.json"))
			if err != nil {
				continue // not created yet
			}
			reads++
			var idx ocispec.Index
			if err := json.Unmarshal(data, &idx); err != nil {
				bad++
				if firstBad == "" {
					firstBad = fmt.Sprintf("%v: %q", err, data)
				}
			}
		}
	}()

	want := map[string]ocispec.Descriptor{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := target.OpenLayout(ctx, dir)
			if err != nil {
				t.Error(err)
				return
			}
			defer closeLayout(t, s)
			for i := range images {
				tag := fmt.Sprintf("w%d-%d", w, i)
				root, err := pushImage(ctx, s, []byte(tag), tag)
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				mu.Lock()
				want[tag] = root
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(done)
	readerWG.Wait()
	if bad > 0 {
		t.Errorf("a reader saw index.json unparseable %d times of %d, first: %s", bad, reads, firstBad)
	}
	t.Logf("%d reads of index.json while %d writers tagged %d images", reads, writers, writers*images)

	// Every tag is in index.json and resolves, in a fresh reader.
	src, err := target.OpenSource(ctx, target.Reference{Kind: target.KindLayout, Path: dir}, target.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	for tag, root := range want {
		got, err := src.Resolve(ctx, tag)
		if err != nil || got.Digest != root.Digest {
			lost++
			t.Errorf("Resolve(%s) = %v, %v; want %s", tag, got.Digest, err, root.Digest)
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d tags lost", lost, len(want))
	}
}

// TestLayoutTagMoves checks that a tag moved by one writer is moved for a
// writer that opened the layout before: it resolves index.json as it is.
func TestLayoutTagMoves(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	a, err := target.OpenLayout(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeLayout(t, a)
	b, err := target.OpenLayout(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeLayout(t, b)
	if _, err := pushImage(ctx, a, []byte("one"), "41"); err != nil {
		t.Fatal(err)
	}
	two, err := pushImage(ctx, b, []byte("two"), "41")
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]oras.Target{"first": a, "second": b} {
		if got, err := s.Resolve(ctx, "41"); err != nil || got.Digest != two.Digest {
			t.Errorf("%s writer: Resolve(41) = %v, %v; want %s", name, got.Digest, err, two.Digest)
		}
	}
	idx := readIndexFile(t, dir)
	named := 0
	for _, m := range idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] == "41" {
			named++
		}
	}
	if named != 1 {
		t.Errorf("index.json names 41 %d times, want once: %+v", named, idx.Manifests)
	}
}

func readIndexFile(t *testing.T, dir string) ocispec.Index {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

// ingestEntries lists what the layout's ingest directory holds.
func ingestEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "ingest"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// stallingReader is a source that sends one read, stalls until released,
// then sends on without end.
type stallingReader struct {
	reads   int
	started chan struct{}
	release chan struct{}
}

func (r *stallingReader) Read(p []byte) (int, error) {
	r.reads++
	if r.reads == 2 {
		close(r.started)
		<-r.release
	}
	return copy(p, bytes.Repeat([]byte("x"), len(p))), nil
}

// TestLayoutIngestCleanup checks that partial blobs do not stay in the
// layout's ingest directory: not after a digest mismatch, not after an
// interrupted push, and not after a writer that was killed.
func TestLayoutIngestCleanup(t *testing.T) {
	ctx := t.Context()

	t.Run("digest mismatch", func(t *testing.T) {
		dir := t.TempDir()
		s, err := target.OpenLayout(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer closeLayout(t, s)
		desc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageLayer, []byte("the real blob"))
		if err := s.Push(ctx, desc, bytes.NewReader([]byte("a corrupt one"))); err == nil {
			t.Fatal("Push of corrupt content succeeded")
		}
		if got := ingestEntries(t, dir); len(got) > 0 {
			t.Errorf("ingest/ holds %q after a digest mismatch, want nothing", got)
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		dir := t.TempDir()
		s, err := target.OpenLayout(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer closeLayout(t, s)
		cctx, cancel := context.WithCancel(ctx)
		r := &stallingReader{started: make(chan struct{}), release: make(chan struct{})}
		desc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageLayer, bytes.Repeat([]byte("y"), 64<<20))
		errc := make(chan error, 1)
		go func() { errc <- s.Push(cctx, desc, r) }()
		<-r.started
		cancel()
		// The push must stop at the next read, not read on to the end.
		close(r.release)
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Push after cancel = %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Push did not return within 5 s of its context being cancelled")
		}
		if got := ingestEntries(t, dir); len(got) > 0 {
			t.Errorf("ingest/ holds %q after an interrupted push, want nothing", got)
		}
	})

	t.Run("killed writer", func(t *testing.T) {
		dir := t.TempDir()
		s, err := target.OpenLayout(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		// What a writer killed midway leaves.
		leftover := filepath.Join(dir, "ingest", fmt.Sprintf("%064x_123", 2))
		if err := os.MkdirAll(filepath.Dir(leftover), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(leftover, []byte("partial"), 0o444); err != nil {
			t.Fatal(err)
		}
		// While a writer has the layout open, its ingest files are its
		// own: a second writer leaves them.
		s2, err := target.OpenLayout(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		closeLayout(t, s2)
		if _, ok := any(s).(io.Closer); ok {
			if got := ingestEntries(t, dir); len(got) != 1 {
				t.Errorf("ingest/ holds %q while another writer has the layout open, want its file kept", got)
			}
		}
		closeLayout(t, s)
		// The next writer alone finds it left over and removes it.
		s3, err := target.OpenLayout(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer closeLayout(t, s3)
		if got := ingestEntries(t, dir); len(got) > 0 {
			t.Errorf("ingest/ holds %q after a writer alone opened the layout, want nothing", got)
		}
	})
}

// TestLayoutMalformed checks that a malformed layout is a *LayoutError
// that names the file, for writing and for reading.
func TestLayoutMalformed(t *testing.T) {
	tests := []struct {
		name, file, data, want string
	}{
		{"index not JSON", "index.json", `{"schemaVersion":2,"manifests":[`, "index.json: not a JSON image index"},
		{"index schema", "index.json", `{"schemaVersion":1,"manifests":[]}`, "index.json: schemaVersion is 1, not 2"},
		{"index digest", "index.json", `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:nope","size":2}]}`, `index.json: a manifest has the digest "sha256:nope"`},
		{"layout not JSON", "oci-layout", `imageLayoutVersion=1`, "oci-layout: not JSON"},
		{"layout version", "oci-layout", `{"imageLayoutVersion":"9.9.9"}`, `oci-layout: imageLayoutVersion is "9.9.9", not "1.0.0"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{"oci-layout": `{"imageLayoutVersion":"1.0.0"}`, "index.json": `{"schemaVersion":2,"manifests":[]}`}
			files[tt.file] = tt.data
			for name, data := range files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			check := func(op string, err error) {
				t.Helper()
				var le *target.LayoutError
				if !errors.As(err, &le) || le.File != tt.file || le.Path != dir {
					t.Errorf("%s = %v, want a *target.LayoutError for %s in %s", op, err, tt.file, dir)
				}
				if err != nil && !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
					t.Errorf("%s = %v, want %q in it", op, err, tt.want)
				}
			}
			s, err := target.OpenLayout(t.Context(), dir)
			if err == nil {
				closeLayout(t, s)
			}
			check("OpenLayout", err)
			_, err = target.OpenSource(t.Context(), target.Reference{Kind: target.KindLayout, Path: dir, Reference: "41"}, target.RemoteOptions{})
			check("OpenSource", err)
		})
	}
}

// memoryIndex returns an in-memory store holding an index of mediaType
// (OCI or Docker) over two images, tagged "41", and the digests of the
// index and its images.
func memoryIndex(t *testing.T, mediaType string) (*memory.Store, ocispec.Descriptor, []ocispec.Descriptor) {
	t.Helper()
	ctx := t.Context()
	src := memory.New()
	var images []ocispec.Descriptor
	for _, arch := range []string{"amd64", "arm64"} {
		m, err := pushImage(ctx, src, []byte(arch), arch)
		if err != nil {
			t.Fatal(err)
		}
		m.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
		images = append(images, m)
	}
	data, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mediaType, Manifests: images})
	if err != nil {
		t.Fatal(err)
	}
	root := content.NewDescriptorFromBytes(mediaType, data)
	if err := src.Push(ctx, root, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := src.Tag(ctx, root, "41"); err != nil {
		t.Fatal(err)
	}
	return src, root, images
}

// indexEntries lists index.json's entries as "NAME@DIGEST", NAME empty
// for an untagged one.
func indexEntries(t *testing.T, dir string) []string {
	t.Helper()
	var entries []string
	for _, m := range readIndexFile(t, dir).Manifests {
		entries = append(entries, m.Annotations[ocispec.AnnotationRefName]+"@"+string(m.Digest))
	}
	return entries
}

// TestLayoutListsRoots copies an index of two images into a layout, as
// build, push and mirror do: index.json lists the index once, by its tag,
// and not its two images (crane refuses a layout of three entries; skopeo
// asks for a name), which stay reachable by digest with their media type.
// An image copied by digest alone stays listed, untagged.
func TestLayoutListsRoots(t *testing.T) {
	for _, mediaType := range []string{ocispec.MediaTypeImageIndex, "application/vnd.docker.distribution.manifest.list.v2+json"} {
		t.Run(mediaType, func(t *testing.T) {
			ctx := t.Context()
			src, root, images := memoryIndex(t, mediaType)
			dir := t.TempDir()
			l, err := target.OpenLayout(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer closeLayout(t, l)
			if _, err := oras.Copy(ctx, src, "41", l, "41", oras.DefaultCopyOptions); err != nil {
				t.Fatal(err)
			}
			if got, want := indexEntries(t, dir), []string{"41@" + string(root.Digest)}; !slices.Equal(got, want) {
				t.Errorf("index.json lists %q, want %q", got, want)
			}

			// An image pushed by its digest is a root of its own.
			solo, err := pushImage(ctx, src, []byte("solo"), "solo")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := oras.Copy(ctx, src, "solo", l, solo.Digest.String(), oras.DefaultCopyOptions); err != nil {
				t.Fatal(err)
			}
			if got, want := indexEntries(t, dir), []string{"41@" + string(root.Digest), "@" + string(solo.Digest)}; !slices.Equal(got, want) {
				t.Errorf("after a copy by digest, index.json lists %q, want %q", got, want)
			}

			// The images of the index resolve by digest as manifests, in
			// the writer and in a reader that opens the layout afresh.
			r, err := target.OpenSource(ctx, target.Reference{Kind: target.KindLayout, Path: dir}, target.RemoteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for name, s := range map[string]oras.ReadOnlyTarget{"writer": l, "reader": r} {
				for _, m := range images {
					got, err := s.Resolve(ctx, m.Digest.String())
					if err != nil || got.MediaType != ocispec.MediaTypeImageManifest || got.Size != m.Size {
						t.Errorf("%s: Resolve(%s) = %+v, %v; want an image manifest of %d bytes", name, m.Digest, got, err, m.Size)
					}
				}
				if got, err := s.Resolve(ctx, root.Digest.String()); err != nil || got.MediaType != mediaType {
					t.Errorf("%s: Resolve(%s) = %+v, %v; want %s", name, root.Digest, got, err, mediaType)
				}
			}
		})
	}
}

// TestLayoutOldIndex opens a layout as earlier versions wrote it, with
// the images of its index listed untagged beside it: it reads as before,
// and tagging the index again drops them.
func TestLayoutOldIndex(t *testing.T) {
	ctx := t.Context()
	src, root, images := memoryIndex(t, ocispec.MediaTypeImageIndex)
	dir := t.TempDir()
	if _, err := oras.Copy(ctx, src, "41", orasLayout(t, dir), "41", oras.DefaultCopyOptions); err != nil {
		t.Fatal(err)
	}
	if got := indexEntries(t, dir); len(got) != 3 {
		t.Fatalf("oras-go's store listed %q, want the index and its two images", got)
	}
	r, err := target.OpenSource(ctx, target.Reference{Kind: target.KindLayout, Path: dir}, target.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.Resolve(ctx, "41"); err != nil || got.Digest != root.Digest {
		t.Errorf("Resolve(41) = %v, %v; want %s", got.Digest, err, root.Digest)
	}
	if got, err := r.Resolve(ctx, images[1].Digest.String()); err != nil || got.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("Resolve(%s) = %+v, %v; want an image manifest", images[1].Digest, got, err)
	}

	l, err := target.OpenLayout(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeLayout(t, l)
	if _, err := oras.Copy(ctx, src, "41", l, "41", oras.DefaultCopyOptions); err != nil {
		t.Fatal(err)
	}
	if got, want := indexEntries(t, dir), []string{"41@" + string(root.Digest)}; !slices.Equal(got, want) {
		t.Errorf("after tagging again, index.json lists %q, want %q", got, want)
	}
}

// orasLayout is oras-go's own OCI store in dir, as earlier versions wrote
// layouts with.
func orasLayout(t *testing.T, dir string) oras.Target {
	t.Helper()
	s, err := oci.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
