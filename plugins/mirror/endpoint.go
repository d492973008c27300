package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/registry"

	"github.com/containerdisk/kubectl-containerdisk/pkg/mirror"
	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/pkg/transfer"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upload"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/option"
)

// endpoint is where an image is: a repository of a registry, or a name in
// an OCI layout (a directory, or an archive) whose images are named
// NAME:TAG, the form skopeo's oci: and oci-archive: transports and
// containerd's import read. Its reference is target.Reference.Image: the
// one grammar every command reads, so that what mirror writes, inspect,
// verify, push and promote read.
type endpoint struct {
	// at is the unit's source or target: a registry prefix, oci:DIR or
	// oci-archive:FILE.
	at target.Reference
	// source is the unit whose source this registry is: its tlsVerify,
	// certDir and credentials apply to it. Nil for a target.
	source *mirror.Unit
	name   string // repository name below at
	tag    string
}

func (e endpoint) withTag(t string) endpoint { e.tag = t; return e }

// image is the reference of the image: at/name:tag in a registry,
// at:name:tag in a layout or archive.
func (e endpoint) image() target.Reference { return e.at.Image(e.name, e.tag) }

func (e endpoint) String() string {
	if e.tag == "" && !e.at.IsLocal() {
		return e.at.Join(e.name).String()
	}
	return e.image().String()
}

// newEndpoint is the image name below base, a unit's source or target.
func newEndpoint(base, name string) (endpoint, error) {
	at, err := target.ParsePrefix(base)
	if err != nil {
		return endpoint{}, err
	}
	e := endpoint{at: at, name: name}
	if !at.IsLocal() {
		// The repository's own syntax, as every command reads it.
		if _, err := target.Parse(at.Join(name).String()); err != nil {
			return endpoint{}, err
		}
	}
	return e, nil
}

func sourceEndpoint(u mirror.Unit, spec mirror.ImageSpec) (endpoint, error) {
	e, err := newEndpoint(u.Source, spec.Repository)
	e.source = &u
	return e, err
}

// targetEndpoint names the image at the target: its repository path below
// the target, its last element for skopeo files, or with --scoped its full
// source path.
func targetEndpoint(u mirror.Unit, spec mirror.ImageSpec) (endpoint, error) {
	return newEndpoint(u.Target, u.DestinationName(spec.Repository))
}

// listTags lists a source repository's tags: the registry's tag list, or
// the TAGs of the NAME:TAG names of a layout or archive.
func (e endpoint) listTags(ctx context.Context, t *targets) ([]string, error) {
	src, err := t.source(ctx, e)
	if err != nil {
		return nil, err
	}
	lister, ok := src.(registry.TagLister)
	if !ok {
		return nil, fmt.Errorf("%s lists no tags", e.at)
	}
	var names []string
	err = mirror.Tags(ctx, lister, func(ts []string) error { names = append(names, ts...); return nil })
	if err != nil || !e.at.IsLocal() {
		return names, err
	}
	return target.ImageTags(names, e.name), nil
}

// targets opens each registry repository, layout and archive once per run.
type targets struct {
	remote target.RemoteOptions

	mu      sync.Mutex
	sources map[string]oras.ReadOnlyGraphTarget // layouts and archives read, by reference
	stores  map[string]*target.Layout           // layouts written, by directory
	written map[string]string                   // archives to write: file -> staging layout
}

func newTargets(remote target.RemoteOptions) *targets {
	return &targets{remote: remote, sources: map[string]oras.ReadOnlyGraphTarget{}, stores: map[string]*target.Layout{}, written: map[string]string{}}
}

// remoteFor returns the registry options of an endpoint.
func (t *targets) remoteFor(e endpoint) target.RemoteOptions {
	if e.source != nil {
		return e.source.SourceRemote(t.remote)
	}
	return t.remote
}

// source returns the target to read an endpoint's images from. Layouts and
// archives are opened read-only, once, with target.OpenSource, as every
// command reads them.
func (t *targets) source(ctx context.Context, e endpoint) (oras.ReadOnlyGraphTarget, error) {
	if !e.at.IsLocal() {
		return target.OpenRepository(e.at.Join(e.name), t.remoteFor(e))
	}
	return t.readLocal(ctx, e.at)
}

func (t *targets) readLocal(ctx context.Context, at target.Reference) (oras.ReadOnlyGraphTarget, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := at.String()
	if s, ok := t.sources[key]; ok {
		return s, nil
	}
	s, err := target.OpenSource(ctx, at, t.remote)
	if err != nil {
		return nil, err
	}
	t.sources[key] = s
	return s, nil
}

// destination returns the target to write an endpoint's images to. An
// archive is staged in the layout directory ARCHIVE.layout beside it,
// kept between runs, so that the next export adds only the blobs that are
// missing.
//
// A dry run creates nothing: it reads what the target holds (the staging
// layout of an archive), and a layout or archive that does not exist yet
// is an empty target, of which everything would be copied.
//
// A registry repository is an *upload.Repository, which sends each blob in
// one PUT unless chunk asks for chunks of that size, and resumes an upload
// cut midway.
func (t *targets) destination(ctx context.Context, e endpoint, dryRun bool, chunk int64) (oras.Target, error) {
	if !e.at.IsLocal() {
		repo, err := target.OpenRepository(e.at.Join(e.name), t.remoteFor(e))
		if err != nil {
			return nil, err
		}
		return upload.NewRepository(repo, upload.Uploader{LargeBlob: chunk, ChunkSize: chunk}), nil
	}
	dir := e.at.Path
	if e.at.Kind == target.KindArchive {
		dir = e.at.Path + ".layout"
	}
	if dryRun {
		// A directory that is no layout yet, the real run makes one.
		if _, err := os.Stat(filepath.Join(dir, ocispec.ImageLayoutFile)); errors.Is(err, fs.ErrNotExist) {
			return readOnly{memory.New()}, nil
		}
		s, err := t.readLocal(ctx, target.Reference{Kind: target.KindLayout, Path: dir})
		if err != nil {
			return nil, err
		}
		return readOnly{s}, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.at.Kind == target.KindArchive {
		t.written[e.at.Path] = dir
	}
	if s, ok := t.stores[dir]; ok {
		return s, nil
	}
	s, err := target.OpenLayout(ctx, dir)
	if err != nil {
		return nil, err
	}
	t.stores[dir] = s
	return s, nil
}

// readOnly is the target of a dry run, which only looks at it.
type readOnly struct{ oras.ReadOnlyTarget }

func (readOnly) Push(context.Context, ocispec.Descriptor, io.Reader) error {
	return errors.New("a dry run writes nothing")
}

func (readOnly) Tag(context.Context, ocispec.Descriptor, string) error {
	return errors.New("a dry run writes nothing")
}

// close writes the archives this run exported to and closes what it read.
func (t *targets) close(ctx context.Context, status *option.Status) error {
	var errs []error
	for a, dir := range t.written {
		if err := mirror.WriteArchive(ctx, dir, a); err != nil {
			errs = append(errs, fmt.Errorf("writing %s: %w", a, err))
			continue
		}
		status.Printf("Wrote %s (its blobs stay in %s for the next export)", a, dir)
	}
	for _, s := range t.sources {
		if c, ok := s.(io.Closer); ok {
			c.Close()
		}
	}
	// Layouts opened for writing hold a lock that says so until closed.
	for _, s := range t.stores {
		s.Close()
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
	src, err := t.source(ctx, it.src)
	if err != nil {
		return fail(err)
	}
	dst, err := t.destination(ctx, it.dst, opts.dryRun, opts.chunk)
	if err != nil {
		return fail(err)
	}
	copts := mirror.CopyOptions{
		Platforms: it.unit.Platforms,
		Mode:      it.unit.PlatformMode,
		DryRun:    opts.dryRun,
	}
	var reg, repo string
	if !it.dst.at.IsLocal() {
		img := it.dst.image()
		reg, repo = img.Registry, img.Repository
		copts.MountCandidates = func(d digest.Digest) []string { return blobs.holders(reg, repo, d) }
	}
	copts.OnEvent = func(e transfer.Event) {
		switch e.Action {
		case transfer.ActionUploaded, transfer.ActionMounted, transfer.ActionExists:
			if reg != "" {
				blobs.add(reg, repo, e.Descriptor.Digest)
			}
		case transfer.ActionResumed:
			status.Printf("Resumed %s of %s at byte %d of %d", e.Descriptor.Digest, it.src, e.Offset, e.Descriptor.Size)
		}
	}
	rep, err := mirror.CopyImage(ctx, src, it.src.image().Reference, dst, []string{it.dst.image().Reference}, copts)
	if err != nil {
		return fail(err)
	}
	rec.Digest = rep.TargetDigest.String()
	if note := target.DockerInLayout(rep.TargetMediaType); note != "" && it.dst.at.IsLocal() {
		status.Warnf("%s holds %s; mirror it to a registry, or read it with oras, crane or regctl", it.dst, note)
	}
	st := "copied"
	switch {
	case rep.UpToDate():
		st = "up-to-date"
	case opts.dryRun:
		st = "would-copy"
	}
	// The record's tags are tags, as push's are: "41" of a layout's
	// "fedora:41".
	var tagged []string
	for _, t := range rep.Tagged {
		tagged = append(tagged, it.dst.at.WithReference(t).Tag())
	}
	rec.Push = &pipeline.Push{
		Status: st, DryRun: opts.dryRun, Uploaded: rep.Uploaded, UploadedBytes: rep.UploadedBytes,
		Mounted: rep.Mounted, Existing: rep.Existing, Tagged: tagged,
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
