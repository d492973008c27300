package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/errdef"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/pkg/transfer"
)

// StagingRef is where a build of release r alone is staged below the
// staging prefix: PREFIX/ARCH/NAME:VERSION, which is what
// "build --focus NAME:VERSION --arch ARCH PREFIX/ARCH" writes. Each
// architecture has a repository of its own, so that builds of one
// name:version on separate machines never write one tag.
func StagingRef(staging target.Reference, r catalog.Release) target.Reference {
	return staging.Join(r.Arch).Join(r.Name).WithReference(r.Version)
}

// MaxStagedMessage bounds the message StagedDigest reads: the kubelet keeps
// no more than the last 4096 bytes of a container's termination message
// file.
const MaxStagedMessage = 4096

// StagedDigest reads where a build of release r alone says it staged r:
// msg is what "build --termination-log" wrote, a JSON line (a record with
// reference and digest only) per image built, which the pipeline's Jobs
// pass on as their termination message. It is the Job's word, not
// trusted: at most MaxStagedMessage bytes of JSON lines, one of which is
// r's name and version with a valid digest, in r's staging repository
// (StagingRef). It returns that repository at that digest, so that what
// is read is what the build pushed, whatever the tag names by then.
func StagedDigest(msg string, staging target.Reference, r catalog.Release) (target.Reference, error) {
	want := StagingRef(staging, r)
	if len(msg) > MaxStagedMessage {
		return target.Reference{}, fmt.Errorf("the message is %d bytes: expected at most %d, which the kubelet keeps", len(msg), MaxStagedMessage)
	}
	var found *pipeline.Record
	for i, line := range strings.Split(msg, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var rec pipeline.Record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			return target.Reference{}, fmt.Errorf("line %d is not a JSON record (%v): %s", i+1, err, pipeline.Quote(line))
		}
		if rec.Name != r.Name || rec.Version != r.Version {
			continue
		}
		if found != nil {
			return target.Reference{}, fmt.Errorf("two records of %s: expected one", pipeline.Show(r.Key()))
		}
		found = &rec
	}
	if found == nil {
		return target.Reference{}, fmt.Errorf("no record of %s in %s: expected a JSON line with its name, version, reference and digest", pipeline.Show(r.Key()), pipeline.Quote(msg))
	}
	if err := pipeline.ValidateDigest(found.Digest); err != nil {
		return target.Reference{}, err
	}
	got, err := target.Parse(found.Reference)
	if err != nil {
		return target.Reference{}, err
	}
	if got.Kind != target.KindRegistry || got.Registry != want.Registry || got.Repository != want.Repository ||
		(got.Reference != want.Reference && got.Reference != found.Digest) {
		return target.Reference{}, fmt.Errorf("the record names %s: expected %s, the staging repository of %s %s", pipeline.Quote(found.Reference), want, pipeline.Show(r.Key()), r.Arch)
	}
	return want.WithReference(found.Digest), nil
}

// Created is the creation time a build of every architecture of g at once
// gives its images (the newest modification time of its disks, which a
// download takes from the upstream's Last-Modified date), read with HEAD
// requests, without downloading: builds of each architecture apart, given
// this time, make the same images. The Builder's own Options.Created, when
// set, wins, as it does in a build.
func (b *Builder) Created(ctx context.Context, g catalog.Group) (time.Time, error) {
	if !b.Options.Created.IsZero() {
		return b.Options.Created.UTC().Truncate(time.Second), nil
	}
	var newest time.Time
	for _, r := range g.Releases {
		t, err := b.Client.Modified(ctx, r.URL)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s %s: %w", r.Key(), r.Arch, err)
		}
		if t.IsZero() {
			return time.Time{}, fmt.Errorf("%s %s: %s sends no Last-Modified date, from which a build takes the creation time: give one with --created", r.Key(), r.Arch, r.URL)
		}
		if t.After(newest) {
			newest = t
		}
	}
	return newest.UTC().Truncate(time.Second), nil
}

// Staged is one architecture of a group, built apart into staging.
type Staged struct {
	Release catalog.Release
	// Source is the staging repository.
	Source oras.ReadOnlyTarget
	// Image is the staged image, read with ReadStaged.
	Image containerdisk.Image
}

// ReadStaged reads the image that reference, a tag or a digest, names in
// src, a staging repository. A missing one is errdef.ErrNotFound.
func ReadStaged(ctx context.Context, src oras.ReadOnlyTarget, reference string) (containerdisk.Image, error) {
	desc, err := src.Resolve(ctx, reference)
	if err != nil {
		return containerdisk.Image{}, err
	}
	return containerdisk.ReadImage(ctx, src, desc)
}

// Reusable reports whether a staged image is what a build of r with opts
// would make now: the same upstream checksum, creation time and manifest
// format. A re-run skips building it.
func Reusable(img containerdisk.Image, r catalog.Release, opts containerdisk.Options) bool {
	format := containerdisk.FormatOCI
	if img.Manifest.MediaType == containerdisk.MediaTypeDockerManifest {
		format = containerdisk.FormatDocker
	}
	if opts.Format == "" {
		opts.Format = containerdisk.FormatOCI
	}
	return img.Platform.Architecture == r.Arch && img.Checksum == r.Checksum && img.Checksum.Hex != "" &&
		img.Created.Equal(opts.Created.UTC().Truncate(time.Second)) && format == opts.Format
}

// Assembly publishes groups whose architectures were built apart.
type Assembly struct {
	// Options are those the architectures were built with (Format,
	// Created); Version, Source, Instancetype and Preference come from
	// the group, as in Builder.
	Options containerdisk.Options
	// Now stamps the timestamped tag.
	Now time.Time
	// MountFrom are repositories of the destination's registry that may
	// hold the blobs (the staging repositories, on the same registry).
	MountFrom []string
	// OnEvent, when set, is told of each node copied and tag written.
	OnEvent func(transfer.Event)
}

// Publish makes the index of g from its staged architectures exactly as
// a build of them all at once makes it (containerdisk.AssembleIndex),
// copies the images and the index to dst, the repository of ref, and
// writes the tags of GroupPolicy last, never moving a unique one. Each
// staged image must record its release's checksum.
func (a *Assembly) Publish(ctx context.Context, g catalog.Group, staged []Staged, ref target.Reference, dst oras.Target) Outcome {
	rec := pipeline.Record{Name: g.Name, Version: g.Version, Latest: g.Latest(), Reference: ref.String()}
	if len(g.Releases) > 0 {
		rec.Metadata = &g.Releases[0].Metadata
	}
	fail := func(err error) Outcome {
		rec.Error = err.Error()
		return Outcome{Status: StatusFailed, Record: rec, Err: err}
	}
	var images []containerdisk.Image
	var sources []content.ReadOnlyStorage
	for _, r := range g.Releases {
		i := slices.IndexFunc(staged, func(s Staged) bool { return s.Release.Arch == r.Arch })
		if i < 0 {
			return fail(fmt.Errorf("%s %s: not staged", g.Key(), r.Arch))
		}
		s := staged[i]
		if s.Image.Checksum != r.Checksum {
			return fail(fmt.Errorf("%s %s: the staged image records %s, upstream has %s: it was built from another file", g.Key(), r.Arch, s.Image.Checksum, r.Checksum))
		}
		images = append(images, s.Image)
		sources = append(sources, s.Source)
	}
	opts := groupOptions(a.Options, g)
	index := memory.New()
	res, err := containerdisk.AssembleIndex(ctx, index, images, opts)
	if err != nil {
		return fail(fmt.Errorf("assembling %s: %w", g.Key(), err))
	}
	policy := GroupPolicy(g, a.Now)
	rep, err := transfer.Push(ctx, union(append([]content.ReadOnlyStorage{index}, sources...)), res.Root, dst, transfer.Options{
		Tags:      policy.Tags(),
		Unique:    policy.UniqueTags(),
		MountFrom: a.MountFrom,
		Name:      ref.String(),
		OnEvent:   a.OnEvent,
	})
	describe(&rec, res)
	rec.Tags = slices.DeleteFunc(policy.Tags(), func(t string) bool { return slices.Contains(rep.Kept, t) })
	rec.Push = PushRecord(rep)
	rec.Push.Status = StatusPushed
	if err != nil {
		return fail(err)
	}
	return Outcome{Status: StatusPushed, Record: rec}
}

// union reads each node from the first storage that has it: the index
// made in memory, then each architecture's staging repository.
type union []content.ReadOnlyStorage

func (u union) Exists(ctx context.Context, d ocispec.Descriptor) (bool, error) {
	for _, s := range u {
		ok, err := s.Exists(ctx, d)
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

func (u union) Fetch(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	for _, s := range u {
		ok, err := s.Exists(ctx, d)
		if err != nil {
			return nil, err
		}
		if ok {
			return s.Fetch(ctx, d)
		}
	}
	return nil, fmt.Errorf("%s %s: %w in staging", d.MediaType, d.Digest, errdef.ErrNotFound)
}

// PushRecord is the push part of a record: what a transfer sent, mounted
// and found, and the tags it wrote, left or kept.
func PushRecord(rep transfer.Report) *pipeline.Push {
	return &pipeline.Push{
		DryRun:        rep.DryRun,
		Uploaded:      rep.Uploaded,
		UploadedBytes: rep.UploadedBytes,
		Mounted:       rep.Mounted,
		Existing:      rep.Existing,
		Tagged:        rep.Tagged,
		Unchanged:     rep.Unchanged,
		Kept:          rep.Kept,
	}
}
