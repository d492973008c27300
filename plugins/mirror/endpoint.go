package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/registry"

	"github.com/containerdisk/kubectl-containerdisk/pkg/mirror"
	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/option"
)

// archivePrefix names a single OCI archive (a tarred OCI layout).
const archivePrefix = "oci-archive:"

// endpoint is where an image is: a repository of a registry, or a name in
// an OCI layout (a directory, or an archive) whose images are tagged
// NAME:TAG, the form skopeo's oci: and oci-archive: transports and
// containerd's import read.
type endpoint struct {
	repo target.Reference // registry
	// source is the unit whose source this registry is: its tlsVerify,
	// certDir and credentials apply to it. Nil for a target.
	source  *mirror.Unit
	dir     string // layout directory
	archive string // archive file, for an archived layout
	name    string // repository name inside a layout
	tag     string
}

func (e endpoint) isLayout() bool { return e.dir != "" || e.archive != "" }

func (e endpoint) withTag(t string) endpoint { e.tag = t; return e }

// ref is the reference inside the target: the tag of a registry
// repository, NAME:TAG in a layout.
func (e endpoint) ref() string {
	if e.isLayout() {
		return e.name + ":" + e.tag
	}
	return e.tag
}

func (e endpoint) String() string {
	switch {
	case e.archive != "":
		return archivePrefix + e.archive + ":" + e.ref()
	case e.dir != "":
		return target.LayoutPrefix + e.dir + ":" + e.ref()
	}
	if e.tag == "" {
		return e.repo.String()
	}
	return e.repo.WithReference(e.tag).String()
}

func parseEndpoint(base, name string) (endpoint, error) {
	switch {
	case strings.HasPrefix(base, archivePrefix):
		return endpoint{archive: filepath.Clean(strings.TrimPrefix(base, archivePrefix)), name: name}, nil
	case strings.HasPrefix(base, target.LayoutPrefix):
		return endpoint{dir: filepath.Clean(strings.TrimPrefix(base, target.LayoutPrefix)), name: name}, nil
	}
	ref, err := target.Parse(strings.TrimSuffix(base, "/") + "/" + name)
	if err != nil {
		return endpoint{}, err
	}
	return endpoint{repo: ref}, nil
}

func sourceEndpoint(u mirror.Unit, spec mirror.ImageSpec) (endpoint, error) {
	e, err := parseEndpoint(u.Source, spec.Repository)
	e.source = &u
	return e, err
}

// targetEndpoint names the image at the target: its repository path below
// the target, its last element for skopeo files, or with --scoped its full
// source path.
func targetEndpoint(u mirror.Unit, spec mirror.ImageSpec) (endpoint, error) {
	return parseEndpoint(u.Target, u.DestinationName(spec.Repository))
}

// listTags lists a source repository's tags: the registry's tag list, or
// the NAME:TAG references of a layout.
func (e endpoint) listTags(ctx context.Context, t *targets) ([]string, error) {
	if !e.isLayout() {
		repo, err := target.OpenRepository(e.repo, t.remoteFor(e))
		if err != nil {
			return nil, err
		}
		var tags []string
		err = mirror.Tags(ctx, repo, func(ts []string) error { tags = append(tags, ts...); return nil })
		return tags, err
	}
	if e.archive == "" {
		return layoutTags(e.dir, e.name)
	}
	a, err := t.open(ctx, e, false)
	if err != nil {
		return nil, err
	}
	var tags []string
	err = mirror.Tags(ctx, a.(registry.TagLister), func(refs []string) error {
		for _, ref := range refs {
			if n, tag, ok := cutLast(ref, ":"); ok && n == e.name {
				tags = append(tags, tag)
			}
		}
		return nil
	})
	return tags, err
}

// layoutTags reads the tags of name from a layout's index.json.
func layoutTags(dir, name string) ([]string, error) {
	refs, err := layoutRefs(dir)
	if err != nil {
		return nil, err
	}
	var tags []string
	for _, ref := range refs {
		if n, tag, ok := cutLast(ref, ":"); ok && n == name && !slices.Contains(tags, tag) {
			tags = append(tags, tag)
		}
	}
	return tags, nil
}

// layoutRefs reads the reference names of a layout's index.json, in order.
func layoutRefs(dir string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, &target.LayoutError{Path: dir, File: "index.json", Err: fmt.Errorf("not a JSON image index: %w", err)}
	}
	var refs []string
	for _, m := range idx.Manifests {
		if ref := m.Annotations[ocispec.AnnotationRefName]; ref != "" && !slices.Contains(refs, ref) {
			refs = append(refs, ref)
		}
	}
	return refs, nil
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// targets opens each registry repository, layout and archive once per run.
type targets struct {
	remote target.RemoteOptions

	mu       sync.Mutex
	stores   map[string]oras.Target     // layouts, by directory
	archives map[string]*mirror.Archive // archives read
	written  map[string]string          // archives to write: file -> staging layout
}

func newTargets(remote target.RemoteOptions) *targets {
	return &targets{remote: remote, stores: map[string]oras.Target{}, archives: map[string]*mirror.Archive{}, written: map[string]string{}}
}

// remoteFor returns the registry options of an endpoint.
func (t *targets) remoteFor(e endpoint) target.RemoteOptions {
	if e.source != nil {
		return e.source.SourceRemote(t.remote)
	}
	return t.remote
}

// open returns the oras target of an endpoint. An archive to write is
// staged in the layout directory ARCHIVE.layout beside it, kept between
// runs, so that the next export adds only the blobs that are missing; an
// archive to read is read in place.
func (t *targets) open(ctx context.Context, e endpoint, write bool) (oras.Target, error) {
	if !e.isLayout() {
		return target.OpenRepository(e.repo, t.remoteFor(e))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	dir := e.dir
	if e.archive != "" {
		if !write {
			if a, ok := t.archives[e.archive]; ok {
				return readOnly{a}, nil
			}
			a, err := mirror.OpenArchive(ctx, e.archive)
			if err != nil {
				return nil, err
			}
			t.archives[e.archive] = a
			return readOnly{a}, nil
		}
		dir = e.archive + ".layout"
		t.written[e.archive] = dir
	}
	if s, ok := t.stores[dir]; ok {
		return s, nil
	}
	if !write {
		if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
			return nil, fmt.Errorf("%s is not an OCI layout: %w", dir, err)
		}
	}
	s, err := target.OpenLayout(ctx, dir)
	if err != nil {
		return nil, err
	}
	t.stores[dir] = s
	return s, nil
}

// readOnly makes a read-only archive an oras.Target for the copy engine,
// which only reads from its source.
type readOnly struct{ *mirror.Archive }

func (readOnly) Push(context.Context, ocispec.Descriptor, io.Reader) error {
	return errors.New("an archive being read is read-only")
}

func (readOnly) Tag(context.Context, ocispec.Descriptor, string) error {
	return errors.New("an archive being read is read-only")
}

// close writes the archives this run exported to and closes those it read.
func (t *targets) close(ctx context.Context, status *option.Status) error {
	var errs []error
	for a, dir := range t.written {
		if err := mirror.WriteArchive(ctx, dir, a); err != nil {
			errs = append(errs, fmt.Errorf("writing %s: %w", a, err))
			continue
		}
		status.Printf("Wrote %s (its blobs stay in %s for the next export)", a, dir)
	}
	for _, a := range t.archives {
		a.Close()
	}
	// Layouts opened for writing hold a lock that says so until closed.
	for _, s := range t.stores {
		if c, ok := s.(io.Closer); ok {
			c.Close()
		}
	}
	return errors.Join(errs...)
}

// blobIndex records which repositories of each registry hold a blob, as
// the run learns it, so that a blob is mounted from where it is and not
// sought blindly.
type blobIndex struct {
	mu sync.Mutex
	m  map[string]map[digest.Digest][]string // registry -> blob -> repositories
}

func newBlobIndex() *blobIndex { return &blobIndex{m: map[string]map[digest.Digest][]string{}} }

func (b *blobIndex) add(registry, repo string, d digest.Digest) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m[registry] == nil {
		b.m[registry] = map[digest.Digest][]string{}
	}
	if !slices.Contains(b.m[registry][d], repo) {
		b.m[registry][d] = append(b.m[registry][d], repo)
	}
}

// holders returns the repositories other than repo known to hold d.
func (b *blobIndex) holders(registry, repo string, d digest.Digest) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, r := range b.m[registry][d] {
		if r != repo {
			out = append(out, r)
		}
	}
	return out
}

// copyItem copies one image and describes the outcome.
func copyItem(ctx context.Context, it item, t *targets, opts *mirrorOptions, blobs *blobIndex, status *option.Status) pipeline.Record {
	rec := pipeline.Record{Reference: it.dst.String()}
	fail := func(err error) pipeline.Record {
		rec.Error = cli.Explain(err)
		status.Printf("Failed %s: %s", it.src, rec.Error)
		return rec
	}
	src, err := t.open(ctx, it.src, false)
	if err != nil {
		return fail(err)
	}
	dst, err := t.open(ctx, it.dst, !opts.dryRun)
	if err != nil {
		return fail(err)
	}
	copts := mirror.CopyOptions{
		Platforms: it.unit.Platforms,
		Mode:      it.unit.PlatformMode,
		DryRun:    opts.dryRun,
		// One PUT per blob unless --chunk-size asks for chunks.
		LargeBlob: opts.chunk,
		ChunkSize: opts.chunk,
	}
	var reg, repo string
	if !it.dst.isLayout() {
		reg, repo = it.dst.repo.Registry, it.dst.repo.Repository
		copts.MountCandidates = func(d digest.Digest) []string { return blobs.holders(reg, repo, d) }
	}
	copts.OnEvent = func(e mirror.Event) {
		switch e.Action {
		case mirror.ActionCopied, mirror.ActionMounted, mirror.ActionExists:
			if reg != "" {
				blobs.add(reg, repo, e.Descriptor.Digest)
			}
		case mirror.ActionResumed:
			status.Printf("Resumed %s of %s at byte %d of %d", e.Descriptor.Digest, it.src, e.Offset, e.Descriptor.Size)
		}
	}
	rep, err := mirror.CopyImage(ctx, src, it.src.ref(), dst, []string{it.dst.ref()}, copts)
	if err != nil {
		return fail(err)
	}
	rec.Digest = rep.TargetDigest.String()
	if note := target.DockerInLayout(rep.TargetMediaType); note != "" && it.dst.isLayout() {
		status.Warnf("%s holds %s; mirror it to a registry, or read it with oras, crane or regctl", it.dst, note)
	}
	st := "copied"
	switch {
	case rep.UpToDate:
		st = "up-to-date"
	case opts.dryRun:
		st = "would-copy"
	}
	rec.Push = &pipeline.Push{
		Status: st, DryRun: opts.dryRun, Uploaded: rep.Copied, UploadedBytes: rep.CopiedBytes,
		Mounted: rep.Mounted, Existing: rep.Existing, Tagged: rep.Tags,
	}
	if st == "copied" {
		how := ""
		if rep.SourceDigest != rep.TargetDigest {
			how = fmt.Sprintf(" (%s: %s of %s)", rep.Mode, strings.Join(rep.Platforms, ", "), rep.SourceDigest)
		}
		status.Printf("Copied %s -> %s %s%s", it.src, it.dst, rep.TargetDigest, how)
	}
	return rec
}
