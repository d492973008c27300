// Package publish turns catalog releases into containerdisks: it downloads
// every architecture of a name:version in parallel into a cache keyed by
// checksum, packs them into one image index, tells whether a registry
// already has that release (from the checksums recorded in the image
// configs, never by pulling layers), and names the tags it is published
// under (Policy). Job is the whole catalog job that push --focus and build
// run: compare, build what changed, tag last.
package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

// Builder downloads releases and packs them into containerdisk layers.
type Builder struct {
	// Client downloads the disk files.
	Client *upstream.Client
	// CacheDir keeps downloads by checksum, so that a second build of
	// the same release downloads nothing.
	CacheDir string
	// Options are the build options; Version, Source, Instancetype and
	// Preference are filled in from the releases.
	Options containerdisk.Options
	// Progress, when set, returns a writer that is given each release's
	// bytes as they are downloaded.
	Progress func(r catalog.Release, total int64) io.Writer
	// CustomizeTimeout bounds each libguestfs tool call of a customized
	// release; customize.DefaultTimeout when zero.
	CustomizeTimeout time.Duration
	// Log, when set, receives the steps of customizing a release and the
	// tools' output, one line per call.
	Log func(r catalog.Release, line string)
}

// Download fetches every release of g in parallel into the cache and returns
// the disks to build, in the group's order.
func (b *Builder) Download(ctx context.Context, g catalog.Group) ([]containerdisk.Disk, []upstream.Downloaded, error) {
	if err := g.Err(); err != nil {
		return nil, nil, err
	}
	// A spec this host cannot apply fails the group before anything is
	// downloaded.
	for _, r := range g.Releases {
		if r.Customize != nil {
			if err := r.Customize.CheckArch(r.Arch); err != nil {
				return nil, nil, fmt.Errorf("%s %s: customize: %w", r.Key(), r.Arch, err)
			}
		}
	}
	disks := make([]containerdisk.Disk, len(g.Releases))
	results := make([]upstream.Downloaded, len(g.Releases))
	errs := make([]error, len(g.Releases))
	var wg sync.WaitGroup
	for i, r := range g.Releases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := upstream.Download{URL: r.URL, Checksum: r.Checksum, Compression: r.Compression, CacheDir: b.CacheDir}
			if b.Progress != nil {
				d.Progress = func(total int64) io.Writer { return b.Progress(r, total) }
			}
			res, err := b.Client.Download(ctx, d)
			if err != nil {
				errs[i] = fmt.Errorf("%s %s: %w", r.Key(), r.Arch, err)
				return
			}
			results[i] = res
			path, name := res.Path, DiskName(r)
			if r.Customize != nil {
				if path, err = b.customize(ctx, r, res.Path); err != nil {
					errs[i] = fmt.Errorf("%s %s: %w", r.Key(), r.Arch, err)
					return
				}
				name = CustomizedName(name)
			}
			disks[i] = containerdisk.Disk{
				Architecture: r.Arch,
				Path:         path,
				Name:         name,
				Customize:    r.CustomizeDigest(),
				Checksum:     r.Checksum,
				Verified:     true,
				Source:       r.URL,
				Instancetype: r.Metadata.Instancetype,
				Preference:   r.Metadata.Preference,
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return disks, results, nil
}

// Build downloads the group and writes the images and, for several
// architectures, the index to dst, pushing each image while the next
// architecture is packed. Nothing is tagged: the caller tags Result.Root
// once everything is in place.
func (b *Builder) Build(ctx context.Context, g catalog.Group, dst containerdisk.Storage) (containerdisk.Result, error) {
	disks, _, err := b.Download(ctx, g)
	if err != nil {
		return containerdisk.Result{}, err
	}
	res, err := containerdisk.Build(ctx, dst, disks, b.options(g))
	if err != nil {
		return res, fmt.Errorf("writing %s: %w", g.Key(), err)
	}
	return res, nil
}

// options are the build options of the group's images.
func (b *Builder) options(g catalog.Group) containerdisk.Options {
	return groupOptions(b.Options, g)
}

// groupOptions fills in opts what the group's releases say: its version,
// and the first release's URL, instancetype and preference.
func groupOptions(opts containerdisk.Options, g catalog.Group) containerdisk.Options {
	first := g.Releases[0]
	opts.Version = g.Version
	opts.Source = first.URL
	opts.Instancetype = first.Metadata.Instancetype
	opts.Preference = first.Metadata.Preference
	return opts
}

// DiskName is the file name under disk/ in the image: the upstream file's
// name without its compression suffix.
func DiskName(r catalog.Release) string {
	name := path.Base(r.URL)
	for _, ext := range []string{".gz", ".xz", ".zst"} {
		if r.Compression != "" {
			name = strings.TrimSuffix(name, ext)
		}
	}
	return name
}

// Policy is the one tag policy of a published image: the tags it is
// written under, in order (the unique ones first, the moving ones last, so
// that a moving tag names the image only once everything else does), and
// which of them are unique: those pin one image and are never moved to
// another.
type Policy struct {
	// Version is the moving version tag ("42"); none when empty.
	Version string
	// Stamp, when not zero, adds the unique "<Version>-<YYMMDDhhmm>"
	// (UTC) first.
	Stamp time.Time
	// Unique are the build's own tags (Fedora's "42-1.14"); one that is
	// Version or "latest" moves.
	Unique []string
	// Moving are further moving tags, written before Version.
	Moving []string
	// Latest adds "latest" last.
	Latest bool
}

// Tags returns the tags to write, in order, each once.
func (p Policy) Tags() []string {
	var tags []string
	add := func(ts ...string) {
		for _, t := range ts {
			if !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
	}
	if !p.Stamp.IsZero() {
		add(p.stamp())
	}
	add(p.Unique...)
	add(p.Moving...)
	if p.Version != "" {
		add(p.Version)
	}
	if p.Latest {
		add("latest")
	}
	return tags
}

// UniqueTags returns those of Tags that must never be moved to another
// image: the timestamped tag and the build's own tags.
func (p Policy) UniqueTags() []string {
	var out []string
	if !p.Stamp.IsZero() {
		out = append(out, p.stamp())
	}
	for _, t := range p.Unique {
		if t != p.Version && t != "latest" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

func (p Policy) stamp() string { return p.Version + "-" + p.Stamp.UTC().Format("0601021504") }

// GroupPolicy is the policy a catalog group is published under at now:
// "<version>-<YYMMDDhhmm>", then the unique tags every architecture
// shares (an architecture with another build would make them a lie), then
// the moving version tag, then "latest" when the group is its name's
// latest version.
func GroupPolicy(g catalog.Group, now time.Time) Policy {
	return Policy{Version: g.Version, Stamp: now, Unique: UniqueTags(g), Latest: g.Latest()}
}

// Tags returns the tags a group is published under at now, in the order
// they are written (see GroupPolicy).
func Tags(g catalog.Group, now time.Time) []string {
	return GroupPolicy(g, now).Tags()
}

// UniqueTags returns the unique tags every release of the group has.
func UniqueTags(g catalog.Group) []string {
	if len(g.Releases) == 0 {
		return nil
	}
	var out []string
	for _, t := range g.Releases[0].Tags {
		shared := true
		for _, r := range g.Releases[1:] {
			if !slices.Contains(r.Tags, t) {
				shared = false
			}
		}
		if shared && t != g.Version && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// Published is what a registry has under a release's version tag.
type Published struct {
	// Root is the tagged index or manifest; zero when the tag is absent.
	Root ocispec.Descriptor
	// Checksums are the upstream checksums recorded in each
	// architecture's config.
	Checksums map[string]containerdisk.Checksum
	// Customize are the customization digests recorded in each
	// architecture's config, for the customized ones.
	Customize map[string]string
}

// ReadPublished reads the checksums recorded in the image tagged tag in
// target, fetching only the index, the manifests and the configs: small
// objects, never a layer. A missing tag is not an error: Root is zero.
func ReadPublished(ctx context.Context, target oras.ReadOnlyTarget, tag string) (Published, error) {
	p := Published{Checksums: map[string]containerdisk.Checksum{}, Customize: map[string]string{}}
	root, data, err := fetchRoot(ctx, target, tag)
	if errors.Is(err, errdef.ErrNotFound) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("reading %s: %w", tag, err)
	}
	p.Root = root
	var manifests []ocispec.Descriptor
	switch root.MediaType {
	case ocispec.MediaTypeImageIndex, containerdisk.MediaTypeDockerManifestList:
		var idx ocispec.Index
		if err := json.Unmarshal(data, &idx); err != nil {
			return p, fmt.Errorf("decoding %s: %w", root.Digest, err)
		}
		manifests = idx.Manifests
		if fromIndex(idx, p.Checksums, p.Customize) {
			return p, nil
		}
	default:
		manifests = []ocispec.Descriptor{root}
	}
	var mu sync.Mutex
	errs := make([]error, len(manifests))
	var wg sync.WaitGroup
	for i, m := range manifests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var man ocispec.Manifest
			if err := containerdisk.FetchManifestJSON(ctx, target, m, &man); err != nil {
				errs[i] = err
				return
			}
			var cfg ocispec.Image
			if err := containerdisk.FetchManifestJSON(ctx, target, man.Config, &cfg); err != nil {
				errs[i] = err
				return
			}
			arch := cfg.Architecture
			if m.Platform != nil && m.Platform.Architecture != "" {
				arch = m.Platform.Architecture
			}
			c := recordedChecksum(cfg.Config.Labels)
			mu.Lock()
			p.Checksums[arch] = c
			if d := cfg.Config.Labels[containerdisk.LabelCustomize]; d != "" {
				p.Customize[arch] = d
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return p, errors.Join(errs...)
}

// fetchRoot resolves and reads the tagged index or manifest, in one GET when
// the target can (a registry), else a resolve and a fetch.
func fetchRoot(ctx context.Context, target oras.ReadOnlyTarget, tag string) (ocispec.Descriptor, []byte, error) {
	if rf, ok := target.(registry.ReferenceFetcher); ok {
		desc, rc, err := rf.FetchReference(ctx, tag)
		if err != nil {
			return desc, nil, err
		}
		defer rc.Close()
		if desc.Size > containerdisk.MaxManifestSize {
			return desc, nil, fmt.Errorf("%s: %d bytes: too large for a manifest", desc.Digest, desc.Size)
		}
		data, err := content.ReadAll(rc, desc)
		return desc, data, err
	}
	desc, err := target.Resolve(ctx, tag)
	if err != nil {
		return desc, nil, err
	}
	if desc.Size > containerdisk.MaxManifestSize {
		return desc, nil, fmt.Errorf("%s: %d bytes: too large for a manifest", desc.Digest, desc.Size)
	}
	data, err := content.FetchAll(ctx, target, desc)
	return desc, data, err
}

// fromIndex fills sums from the checksums the index records beside each
// manifest, and reports whether every manifest had one; images written
// before that, or by other tools, need their configs read.
func fromIndex(idx ocispec.Index, sums map[string]containerdisk.Checksum, custom map[string]string) bool {
	found := map[string]containerdisk.Checksum{}
	foundCustom := map[string]string{}
	for _, m := range idx.Manifests {
		c, err := containerdisk.ParseChecksum(m.Annotations[containerdisk.LabelChecksum])
		if err != nil || m.Platform == nil || m.Platform.Architecture == "" {
			return false
		}
		found[m.Platform.Architecture] = c
		if d := m.Annotations[containerdisk.LabelCustomize]; d != "" {
			foundCustom[m.Platform.Architecture] = d
		}
	}
	for a, c := range found {
		sums[a] = c
	}
	for a, d := range foundCustom {
		custom[a] = d
	}
	return len(found) > 0
}

// recordedChecksum reads the checksum label; images that record only the
// bare "shasum" label are taken as sha256 or sha512 by length.
func recordedChecksum(labels map[string]string) containerdisk.Checksum {
	if c, err := containerdisk.ParseChecksum(labels[containerdisk.LabelChecksum]); err == nil {
		return c
	}
	if s := labels[containerdisk.LabelShasum]; s != "" {
		algo := "sha256"
		if len(s) == 128 {
			algo = "sha512"
		}
		return containerdisk.Checksum{Algorithm: algo, Hex: strings.ToLower(s)}
	}
	return containerdisk.Checksum{}
}

// UpToDate reports whether the published image has exactly the group's
// architectures with the group's checksums and customizations: a changed
// spec is a change as much as a new upstream disk.
func (p Published) UpToDate(g catalog.Group) bool {
	if p.Root.Digest == "" || len(p.Checksums) != len(g.Releases) {
		return false
	}
	for _, r := range g.Releases {
		if c, ok := p.Checksums[r.Arch]; !ok || c != r.Checksum || p.Customize[r.Arch] != r.CustomizeDigest() {
			return false
		}
	}
	return true
}

// Diff describes how the published image differs from the group, for
// messages: "amd64 sha256:ab12… -> sha256:cd34…, s390x new".
func (p Published) Diff(g catalog.Group) string {
	if p.Root.Digest == "" {
		return "not published yet"
	}
	var parts []string
	for _, r := range g.Releases {
		c, ok := p.Checksums[r.Arch]
		switch {
		case !ok:
			parts = append(parts, r.Arch+" new")
		case c != r.Checksum:
			parts = append(parts, fmt.Sprintf("%s %s -> %s", r.Arch, short(c), short(r.Checksum)))
		case p.Customize[r.Arch] != r.CustomizeDigest():
			parts = append(parts, fmt.Sprintf("%s customize %s -> %s", r.Arch, shortDigest(p.Customize[r.Arch]), shortDigest(r.CustomizeDigest())))
		}
	}
	for arch := range p.Checksums {
		if !slices.ContainsFunc(g.Releases, func(r catalog.Release) bool { return r.Arch == arch }) {
			parts = append(parts, arch+" gone upstream")
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func shortDigest(d string) string {
	if d == "" {
		return "none"
	}
	if len(d) > len("sha256:")+12 {
		d = d[:len("sha256:")+12]
	}
	return d
}

func short(c containerdisk.Checksum) string {
	if c.IsZero() {
		return "none"
	}
	h := c.Hex
	if len(h) > 12 {
		h = h[:12]
	}
	return c.Algorithm + ":" + h
}
