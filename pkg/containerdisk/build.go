package containerdisk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/pkg/disk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/inputerr"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
)

// Disk is one architecture's disk file.
type Disk struct {
	// Architecture is amd64, arm64 or s390x.
	Architecture string
	// Path is the local qcow2 or raw file.
	Path string
	// Name is the file name under disk/ in the image; by default the base
	// name of Path.
	Name string
	// Checksum, when set, is the upstream checksum the file must match.
	Checksum Checksum
	// Source, Instancetype and Preference, when set, replace those of
	// Options for this disk's image: an upstream URL and a KubeVirt
	// preference can differ between architectures.
	Source       string
	Instancetype string
	Preference   string
	// Verified says that Checksum was already checked, for instance while
	// the file was downloaded (and then perhaps decompressed, so that the
	// checksum is of the compressed file): it is recorded in the image as
	// given, and the file is not hashed again.
	Verified bool
	// Customize, when set, is the digest of the customization that made
	// Path from the upstream disk of Checksum, recorded as LabelCustomize
	// (and beside the manifest in an index).
	Customize string
}

// Options configures a build.
type Options struct {
	// Format is the manifest format; FormatOCI when empty.
	Format Format
	// Compression is the layer compression; CompressionGzip when empty.
	Compression Compression
	// Created is the image creation time; when zero, the newest
	// modification time of the disk files, so that it comes from the input
	// and not from the clock.
	Created time.Time
	// Source is the upstream URL, recorded as org.opencontainers.image.source.
	Source string
	// Version is the release, recorded as org.opencontainers.image.version.
	Version string
	// Instancetype and Preference are KubeVirt's defaults for the image.
	Instancetype string
	Preference   string
	// Annotations are added to every manifest and the index.
	Annotations map[string]string
	// TempDir holds the compressed layers while they are built; the
	// system temporary directory when empty.
	TempDir string
	// Progress, when set, returns a writer that is given the bytes of each
	// disk as they are read.
	Progress func(d Disk, size int64) io.Writer
}

// Image is the result of building one architecture.
type Image struct {
	Platform ocispec.Platform
	Manifest ocispec.Descriptor
	Config   ocispec.Descriptor
	Layer    ocispec.Descriptor
	DiffID   digest.Digest
	Checksum Checksum
	// Customize is Disk.Customize.
	Customize string
	Disk      disk.Info
	// Created is the creation time in the config.
	Created time.Time
}

// Result is the outcome of a build.
type Result struct {
	// Root is the image index when several architectures were built, else
	// the one manifest.
	Root   ocispec.Descriptor
	Images []Image
}

// Storage is where a build writes blobs and manifests.
type Storage interface {
	content.Pusher
	content.ReadOnlyStorage
}

var diskNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// Layers are the validated disks of a build, packed into compressed layers
// in temporary files, each checked against its checksum. Nothing has been
// written to a target yet; Push does that. Close removes the files.
type Layers struct {
	disks  []Disk
	infos  []disk.Info
	layers []*layer
	opts   Options
}

// Build validates every disk, builds one image per disk and, for several
// disks, an index over them, and pushes all of it to dst. Bad input is
// refused before anything is written: when every disk was verified
// already (Disk.Verified), packing cannot find it bad, and each image is
// pushed while the next disk is packed; otherwise every layer is made, and
// its checksum checked, before the first push. Nothing is tagged: the
// caller tags Result.Root once every part is in place.
func Build(ctx context.Context, dst Storage, disks []Disk, opts Options) (Result, error) {
	l, err := newLayers(disks, opts)
	if err != nil {
		return Result{}, err
	}
	defer l.Close()
	if !slices.ContainsFunc(l.disks, func(d Disk) bool { return !d.Verified }) {
		return l.packAndPush(ctx, dst)
	}
	if err := l.packAll(ctx); err != nil {
		return Result{}, err
	}
	return l.Push(ctx, dst)
}

// packAndPush packs the disks one after another and pushes each image as
// soon as its layer is made, then the index.
func (l *Layers) packAndPush(ctx context.Context, dst Storage) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	images := make([]Image, len(l.disks))
	errs := make([]error, len(l.disks))
	var wg sync.WaitGroup
	var packErr error
	for i := range l.disks {
		if packErr = l.pack(ctx, i); packErr != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			images[i], errs[i] = pushImage(ctx, dst, l.disks[i], l.infos[i], l.layers[i], l.opts)
			if errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	// A push that failed cancelled the packing: its error is the cause.
	for _, err := range errs {
		if err != nil {
			return Result{}, err
		}
	}
	if packErr != nil {
		return Result{}, packErr
	}
	res := Result{Images: images}
	if len(images) == 1 {
		res.Root = images[0].Manifest
		return res, nil
	}
	var err error
	res.Root, err = pushIndex(ctx, dst, images, l.opts)
	return res, err
}

// MakeLayers validates every disk and packs each into its layer, verifying
// the checksums. A bad disk is refused before any layer is made.
func MakeLayers(ctx context.Context, disks []Disk, opts Options) (*Layers, error) {
	l, err := newLayers(disks, opts)
	if err != nil {
		return nil, err
	}
	if err := l.packAll(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// packAll packs every disk, one after another.
func (l *Layers) packAll(ctx context.Context) error {
	for i := range l.disks {
		if err := l.pack(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// newLayers checks the options and the disks, and orders the disks; no
// layer is packed yet.
func newLayers(disks []Disk, opts Options) (*Layers, error) {
	if opts.Format == "" {
		opts.Format = FormatOCI
	}
	if opts.Compression == "" {
		opts.Compression = CompressionGzip
	}
	if opts.Format == FormatDocker && opts.Compression == CompressionZstd {
		return nil, &inputerr.Error{Input: "zstd", What: "unknown compression for --format docker", Expected: "gzip or none (Docker schema2 has no zstd layers; use --format oci)"}
	}
	if len(disks) == 0 {
		return nil, errors.New("no disk given: expected at least one disk file")
	}
	prepared, infos, err := prepare(disks)
	if err != nil {
		return nil, err
	}
	if opts.Created.IsZero() {
		for _, d := range prepared {
			if fi, err := os.Stat(d.Path); err == nil && fi.ModTime().After(opts.Created) {
				opts.Created = fi.ModTime()
			}
		}
	}
	opts.Created = opts.Created.UTC().Truncate(time.Second)

	return &Layers{disks: prepared, infos: infos, layers: make([]*layer, len(prepared)), opts: opts}, nil
}

// pack writes the layer of disk i, checking its checksum.
func (l *Layers) pack(ctx context.Context, i int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := l.disks[i]
	var progress io.Writer
	if l.opts.Progress != nil {
		progress = l.opts.Progress(d, l.infos[i].Size)
	}
	var err error
	l.layers[i], err = writeLayer(ctx, d, d.Name, l.opts.Compression, l.opts.TempDir, progress)
	return err
}

// Close removes the temporary layer files.
func (l *Layers) Close() error {
	var errs []error
	for i, f := range l.layers {
		if f != nil {
			if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			l.layers[i] = nil
		}
	}
	return errors.Join(errs...)
}

// Push writes the layers, configs, manifests and, for several disks, the
// index to dst, each only when dst lacks it.
func (l *Layers) Push(ctx context.Context, dst Storage) (Result, error) {
	var res Result
	for i, d := range l.disks {
		if l.layers[i] == nil {
			return Result{}, errors.New("pushing layers: they were closed")
		}
		img, err := pushImage(ctx, dst, d, l.infos[i], l.layers[i], l.opts)
		if err != nil {
			return Result{}, err
		}
		res.Images = append(res.Images, img)
	}
	if len(res.Images) == 1 {
		res.Root = res.Images[0].Manifest
		return res, nil
	}
	var err error
	res.Root, err = pushIndex(ctx, dst, res.Images, l.opts)
	return res, err
}

// prepare checks every disk before anything is written, and orders them
// by architecture so the index does not depend on the order of the input.
func prepare(disks []Disk) ([]Disk, []disk.Info, error) {
	out := make([]Disk, len(disks))
	seen := map[string]string{}
	for i, d := range disks {
		arch, err := NormalizeArch(d.Architecture)
		if err != nil {
			return nil, nil, err
		}
		if prev, dup := seen[arch]; dup {
			return nil, nil, fmt.Errorf("two disks for architecture %s (%q and %q): expected one disk per architecture", arch, prev, d.Path)
		}
		seen[arch] = d.Path
		d.Architecture = arch
		if d.Name == "" {
			d.Name = filepath.Base(d.Path)
		}
		if !diskNameRE.MatchString(d.Name) {
			return nil, nil, &inputerr.Error{Input: d.Name, What: "unknown disk file name", Expected: "a plain file name of letters, digits, '.', '_', '+' or '-'"}
		}
		out[i] = d
	}
	sort.SliceStable(out, func(i, j int) bool {
		return slices.Index(Architectures, out[i].Architecture) < slices.Index(Architectures, out[j].Architecture)
	})
	infos := make([]disk.Info, len(out))
	for i, d := range out {
		info, err := disk.Inspect(d.Path)
		if err != nil {
			return nil, nil, err
		}
		infos[i] = info
	}
	return out, infos, nil
}

func pushImage(ctx context.Context, dst Storage, d Disk, info disk.Info, l *layer, opts Options) (Image, error) {
	if d.Source != "" {
		opts.Source = d.Source
	}
	if d.Instancetype != "" {
		opts.Instancetype = d.Instancetype
	}
	if d.Preference != "" {
		opts.Preference = d.Preference
	}
	img := Image{
		Platform:  platform(d.Architecture),
		DiffID:    l.diffID,
		Checksum:  l.checksum,
		Customize: d.Customize,
		Disk:      info,
		Created:   opts.Created,
		Layer: ocispec.Descriptor{
			MediaType: layerMediaType(opts.Format, opts.Compression),
			Digest:    l.digest,
			Size:      l.size,
		},
	}
	f, err := os.Open(l.path)
	if err != nil {
		return Image{}, err
	}
	err = pushIfMissing(ctx, dst, img.Layer, f)
	f.Close()
	if err != nil {
		return Image{}, fmt.Errorf("storing layer of %s: %w", d.Architecture, err)
	}

	cfg, err := json.Marshal(imageConfig(img, opts))
	if err != nil {
		return Image{}, err
	}
	img.Config = content.NewDescriptorFromBytes(configMediaType(opts.Format), cfg)
	if err := pushBytes(ctx, dst, img.Config, cfg); err != nil {
		return Image{}, fmt.Errorf("storing config of %s: %w", d.Architecture, err)
	}

	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: manifestMediaType(opts.Format),
		Config:    img.Config,
		Layers:    []ocispec.Descriptor{img.Layer},
	}
	if opts.Format == FormatOCI {
		m.Annotations = annotations(opts)
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return Image{}, err
	}
	img.Manifest = content.NewDescriptorFromBytes(m.MediaType, mb)
	if err := pushBytes(ctx, dst, img.Manifest, mb); err != nil {
		return Image{}, fmt.Errorf("storing manifest of %s: %w", d.Architecture, err)
	}
	p := img.Platform
	img.Manifest.Platform = &p
	return img, nil
}

func pushIndex(ctx context.Context, dst Storage, images []Image, opts Options) (ocispec.Descriptor, error) {
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: indexMediaType(opts.Format),
	}
	for _, img := range images {
		desc := img.Manifest
		if opts.Format == FormatOCI && !img.Checksum.IsZero() {
			// The checksum beside each manifest lets a publisher tell
			// from the index alone whether upstream changed.
			desc.Annotations = map[string]string{LabelChecksum: img.Checksum.String()}
			if img.Customize != "" {
				desc.Annotations[LabelCustomize] = img.Customize
			}
		}
		idx.Manifests = append(idx.Manifests, desc)
	}
	if opts.Format == FormatOCI {
		idx.Annotations = annotations(opts)
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := content.NewDescriptorFromBytes(idx.MediaType, b)
	if err := pushBytes(ctx, dst, desc, b); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("storing index: %w", err)
	}
	return desc, nil
}

func platform(arch string) ocispec.Platform {
	p := ocispec.Platform{OS: "linux", Architecture: arch}
	if arch == "arm64" {
		p.Variant = "v8"
	}
	return p
}

func imageConfig(img Image, opts Options) ocispec.Image {
	instancetype := opts.Instancetype
	if instancetype == "" {
		instancetype = "u1.medium"
	}
	env := []string{EnvInstancetype + "=" + instancetype}
	if opts.Preference != "" {
		env = append(env, EnvPreference+"="+opts.Preference)
	}
	sort.Strings(env)
	labels := map[string]string{
		LabelShasum:   img.Checksum.Hex,
		LabelChecksum: img.Checksum.String(),
	}
	if img.Customize != "" {
		labels[LabelCustomize] = img.Customize
	}
	for k, v := range annotations(opts) {
		labels[k] = v
	}
	created := opts.Created
	return ocispec.Image{
		Created:  &created,
		Platform: img.Platform,
		Config: ocispec.ImageConfig{
			Env:        env,
			Entrypoint: []string{NoEntrypoint},
			Labels:     labels,
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{img.DiffID}},
		History: []ocispec.History{{
			Created:   &created,
			CreatedBy: "kubectl containerdisk build",
			Comment:   "disk/" + string(img.Disk.Format),
		}},
	}
}

func annotations(opts Options) map[string]string {
	a := map[string]string{ocispec.AnnotationCreated: opts.Created.Format(time.RFC3339)}
	if opts.Source != "" {
		a[ocispec.AnnotationSource] = opts.Source
	}
	if opts.Version != "" {
		a[ocispec.AnnotationVersion] = opts.Version
	}
	for k, v := range opts.Annotations {
		a[k] = v
	}
	return a
}

func layerMediaType(f Format, c Compression) string {
	switch {
	case f == FormatDocker && c == CompressionNone:
		return MediaTypeDockerLayer
	case f == FormatDocker:
		return MediaTypeDockerLayerGzip
	case c == CompressionNone:
		return ocispec.MediaTypeImageLayer
	case c == CompressionZstd:
		return ocispec.MediaTypeImageLayerZstd
	default:
		return ocispec.MediaTypeImageLayerGzip
	}
}

func configMediaType(f Format) string {
	if f == FormatDocker {
		return MediaTypeDockerConfig
	}
	return ocispec.MediaTypeImageConfig
}

func manifestMediaType(f Format) string {
	if f == FormatDocker {
		return MediaTypeDockerManifest
	}
	return ocispec.MediaTypeImageManifest
}

func indexMediaType(f Format) string {
	if f == FormatDocker {
		return MediaTypeDockerManifestList
	}
	return ocispec.MediaTypeImageIndex
}

func pushBytes(ctx context.Context, dst Storage, desc ocispec.Descriptor, b []byte) error {
	return pushIfMissing(ctx, dst, desc, bytes.NewReader(b))
}

// pushIfMissing skips content the storage has: a rebuild of the same input
// writes nothing new.
func pushIfMissing(ctx context.Context, dst Storage, desc ocispec.Descriptor, r io.Reader) error {
	ok, err := dst.Exists(ctx, desc)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	return dst.Push(ctx, desc, r)
}
