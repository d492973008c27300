// Package build is the "kubectl containerdisk build" command: it packages
// local disk files into a containerdisk image or a multi-arch index.
package build

import (
	"fmt"
	"io"
	"os"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/customize"
	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/option"
)

// DefaultTarget is where images go when no target is given: an OCI image
// layout in the working directory, so that nothing needs a registry.
const DefaultTarget = "oci:containerdisks"

type buildOptions struct {
	option.Remote
	option.Output
	option.Catalog

	disks       []string
	checksums   []string
	diskName    string
	format      string
	compression string
	version     string
	source      string
	created     string
	instancetyp string
	preference  string
	annotations []string
	tags        []string
	tempDir     string
	cacheDir    string
	workers     int
	arches      []string
	keepArch    map[string]bool

	customizeFile  string
	spec           *customize.Spec
	terminationLog string

	target string
}

// NewCommand returns the build command.
func NewCommand(streams cli.Streams) *cobra.Command {
	opts := buildOptions{Output: option.NewOutput("build")}
	cmd := &cobra.Command{
		Use:   "build [flags] (--disk [ARCH=]FILE... | --focus NAME:VERSION... | < RELEASES) [TARGET]",
		Short: "Package disk files into a containerdisk image",
		Long: `Package local qcow2 or raw disk files into a KubeVirt containerdisk image.

Each --disk gives one architecture's disk (amd64, arm64 or s390x; amd64 when
omitted). One disk makes an image; several make an image index. The disk is
checked first: a file that is not an intact qcow2 or raw disk, or a qcow2 with
a backing file, is refused before anything is written.

The image has one layer holding disk/ and disk/FILE owned by 107:107 (qemu),
fixed modification times, and a config whose creation time comes from the
input (--created, $SOURCE_DATE_EPOCH, or the disk file's modification time),
so the same input always gives the same digests.

TARGET is a registry reference (host[:port]/repo[:tag]) or an OCI image
layout directory (oci:DIR[:tag]); it defaults to ` + DefaultTarget + `. The tag
defaults to --version, else "latest".

Without --disk, build makes catalog releases: those --focus selects, or the
JSON lines of 'kubectl containerdisk gather' on stdin. Each name:version's
architectures are downloaded in parallel (resuming after dropped
connections, kept in --cache-dir by checksum), decompressed, verified against
the upstream checksum while they stream, checked, and built into one index at
TARGET/NAME:VERSION, where TARGET is a registry prefix or a layout directory.
A failing entry is reported and the others are still built. --arch keeps
only the architectures it names, so that each architecture of a release can
be built on a machine of its own (as 'kubectl containerdisk pipeline' does,
one Kubernetes Job per architecture); with --created, the images are the
same as those of one build of every architecture.

--customize SPEC.yaml changes every disk before it is packed, with the
libguestfs tools (virt-customize, virt-sysprep, virt-sparsify), as a
customize: block of a catalog file does for its entry: the file holds the
keys of that block (packages, update, commands, sysprep, selinuxRelabel,
resize, sparsify, network, postCommands). It applies to --disk files, whose
copy is customized (the file itself is never written) after it is checked
against --checksum, and to the releases of --focus or stdin, whose
customized downloads are kept in --cache-dir. The image records the base's
checksum and the spec's digest. Relative host paths in its commands
(copy-in…) are read from the spec file's directory. Commands that run
programs of the guest (run-command, install, update…) need a host of the
disk's architecture and are refused on another before anything is
downloaded or copied; a --focus entry whose catalog file customizes it
already is refused.`,
		Example: `  # Build the latest Fedora releases into oci:containerdisks/fedora
  kubectl containerdisk build --focus 'fedora:*'

  # Package a disk into an OCI layout directory
  kubectl containerdisk build --disk amd64=fedora.qcow2 oci:./layout:41

  # Customize a copy of a disk (write /etc/motd, sysprep…) and package it
  kubectl containerdisk build --disk amd64=debian.qcow2 --customize spec.yaml oci:./layout:12

  # A two-architecture index, recorded with its upstream checksums, pushed next
  kubectl containerdisk build --disk amd64=x86.qcow2 --disk arm64=arm.qcow2 \
      --checksum amd64=sha256:... --version 41 -o json oci:./layout | \
    kubectl containerdisk push --to registry.example.com/containerdisks/fedora`,
		Args: cli.RangeArgs(0, 1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.Remote.Parse(cmd); err != nil {
				return err
			}
			if err := opts.parseArches(); err != nil {
				return err
			}
			if err := opts.Catalog.Parse(cmd); err != nil {
				return err
			}
			return opts.loadSpec(cmd.Context())
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.target = DefaultTarget
			if len(args) == 1 {
				opts.target = args[0]
			}
			if len(opts.disks) == 0 && (opts.Catalog.Focused() || !streams.InIsTerminal()) {
				return runCatalog(cmd.Context(), streams, &opts)
			}
			return runBuild(cmd, streams, &opts)
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&opts.disks, "disk", nil, "disk file for an architecture, as ARCH=FILE or FILE (amd64); repeat for more architectures")
	fs.StringArrayVar(&opts.checksums, "checksum", nil, "upstream checksum of a disk, as ARCH=ALGORITHM:HEX (sha256 or sha512); the file must match it")
	fs.StringVar(&opts.diskName, "disk-name", "", "file name under disk/ in the image (default: the disk file's name)")
	fs.StringVar(&opts.format, "format", string(containerdisk.FormatOCI), "manifest format: oci or docker (Docker schema2)")
	fs.StringVar(&opts.compression, "compression", string(containerdisk.CompressionGzip), "layer compression: gzip, zstd or none")
	fs.StringVar(&opts.version, "version", "", "release version, recorded as org.opencontainers.image.version and used as the default tag")
	fs.StringVar(&opts.source, "source", "", "upstream URL, recorded as org.opencontainers.image.source")
	fs.StringVar(&opts.created, "created", "", "creation time, RFC 3339 or Unix seconds (default $SOURCE_DATE_EPOCH, else the disk file's modification time)")
	fs.StringVar(&opts.instancetyp, "instancetype", "u1.medium", "default KubeVirt instancetype of the image")
	fs.StringVar(&opts.preference, "preference", "", "default KubeVirt preference of the image")
	fs.StringArrayVar(&opts.annotations, "annotation", nil, "annotation KEY=VALUE for the manifests and the index; repeatable")
	fs.StringArrayVarP(&opts.tags, "tag", "t", nil, "further tag, passed on to push with -o json; repeatable")
	fs.StringVar(&opts.tempDir, "temp-dir", "", "directory for the compressed layers while they are built (default: the system's)")
	fs.StringVar(&opts.cacheDir, "cache-dir", option.DefaultCacheDir(), "directory keeping catalog downloads by checksum, so that a second build of a release downloads nothing")
	fs.StringArrayVar(&opts.arches, "arch", nil, "with --focus or stdin: build only these architectures (amd64, arm64, s390x); repeatable or comma-separated")
	fs.IntVar(&opts.workers, "workers", 2, "catalog entries (name:version) built at once; the architectures of each are downloaded in parallel")
	fs.StringVar(&opts.terminationLog, "termination-log", "", "also write a JSON line per image built, its reference and digest only, to this file: a container's terminationMessagePath, from which 'pipeline' reads what its Jobs pushed")
	fs.StringVar(&opts.customizeFile, "customize", "", "YAML file of a customize spec (the keys of a catalog entry's customize: block), applied to a copy of every disk before it is packed")
	opts.Remote.ApplyFlags(fs)
	opts.Output.ApplyFlags(fs)
	opts.Catalog.ApplyFlags(fs)
	cmd.RegisterFlagCompletionFunc("focus", option.CompleteFocus)   //nolint:errcheck // the flag exists
	cmd.RegisterFlagCompletionFunc("output", option.CompleteOutput) //nolint:errcheck // the flag exists
	return cmd
}

func runBuild(cmd *cobra.Command, streams cli.Streams, opts *buildOptions) error {
	ctx := cmd.Context()
	if len(opts.disks) == 0 {
		return cli.Usagef("no disk given: expected --disk ARCH=FILE, e.g. --disk amd64=fedora.qcow2")
	}
	ref, err := target.Parse(opts.target)
	if err != nil {
		return err
	}
	if ref.Reference != "" && !ref.IsTag() {
		return cli.Usagef("target %q names a digest: expected a tag or no tag, since the digest is what build computes", opts.target)
	}
	if ref.Reference == "" {
		ref.Reference = opts.version
		if ref.Reference == "" {
			ref.Reference = "latest"
		}
	}
	disks, err := parseDisks(opts.disks, opts.checksums, opts.diskName)
	if err != nil {
		return err
	}
	base, err := opts.imageOptions()
	if err != nil {
		return err
	}
	annotations, err := parseKeyValues("--annotation", opts.annotations)
	if err != nil {
		return err
	}

	status := option.NewStatus(streams.ErrOut, opts.Quiet)
	opts.Remote.Log = status.Printf
	if opts.spec != nil {
		work, err := os.MkdirTemp(opts.tempDir, "containerdisk-customize-")
		if err != nil {
			return fmt.Errorf("customizing: %w", err)
		}
		defer os.RemoveAll(work)
		if disks, err = opts.customizeDisks(ctx, status, disks, work); err != nil {
			return err
		}
	}
	bopts := containerdisk.Options{
		Format:       base.Format,
		Compression:  base.Compression,
		Created:      base.Created,
		Source:       opts.source,
		Version:      opts.version,
		Instancetype: opts.instancetyp,
		Preference:   opts.preference,
		Annotations:  annotations,
		TempDir:      opts.tempDir,
		Progress: func(d containerdisk.Disk, size int64) io.Writer {
			status.Printf("Building %s from %s", d.Architecture, d.Path)
			if bar := option.ProgressBar(streams.ErrOut, streams.ErrOutIsTerminal(), opts.Quiet, size, d.Architecture); bar != nil {
				return bar
			}
			return nil
		},
	}
	// The disks are checked and packed before the target is opened, so a
	// bad disk leaves no trace there, not even a new layout directory.
	layers, err := containerdisk.MakeLayers(ctx, disks, bopts)
	if err != nil {
		return err
	}
	defer layers.Close()
	dst, err := target.Open(ctx, ref, opts.Remote.Options())
	if err != nil {
		return err
	}
	res, err := layers.Push(ctx, dst)
	if err != nil {
		return err
	}
	if err := dst.Tag(ctx, res.Root, ref.Reference); err != nil {
		return fmt.Errorf("tagging %s as %q: %w", res.Root.Digest, ref.Reference, err)
	}
	status.Printf("Built %s", ref)
	warnDockerInLayout(status, ref, res.Root)
	rec := resultRecord(target.AbsLayoutPath(ref), res, opts.version, opts.tags)
	if err := writeTerminationLog(opts.terminationLog, []pipeline.Record{rec}); err != nil {
		return err
	}
	return printResult(streams.Out, opts, ref, res, rec)
}

// writeTerminationLog writes a JSON line per image built to path, when
// set: its record cut to what says where the image is (name, version,
// reference, digest), short enough for the 4096 bytes the kubelet keeps
// of a container's terminationMessagePath. That is how a Job tells
// 'pipeline' the digest it pushed.
func writeTerminationLog(path string, recs []pipeline.Record) error {
	if path == "" {
		return nil
	}
	var b strings.Builder
	enc := pipeline.NewEncoder(&b)
	for _, r := range recs {
		if r.Error != "" {
			continue
		}
		short := pipeline.Record{Name: r.Name, Version: r.Version, Reference: r.Reference, Digest: r.Digest, MediaType: r.MediaType, Size: r.Size}
		if err := enc.Encode(short); err != nil {
			return err
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("--termination-log: %w", err)
	}
	return nil
}

// warnDockerInLayout warns when a Docker image was built into an OCI
// layout, which older skopeo and podman cannot read by name.
func warnDockerInLayout(status *option.Status, ref target.Reference, root ocispec.Descriptor) {
	if ref.Kind != target.KindLayout {
		return
	}
	if note := target.DockerInLayout(root.MediaType); note != "" {
		status.Warnf("%s holds %s; build with --format oci, or push it to a registry", ref, note)
	}
}

func printResult(w io.Writer, opts *buildOptions, ref target.Reference, res containerdisk.Result, rec pipeline.Record) error {
	if !opts.JSON() {
		_, err := fmt.Fprintf(w, "%s %s\n", ref, res.Root.Digest)
		return err
	}
	return pipeline.NewEncoder(w).Encode(rec)
}

// resultRecord describes a built image for push.
func resultRecord(ref target.Reference, res containerdisk.Result, version string, tags []string) pipeline.Record {
	rec := pipeline.Record{
		Reference: ref.String(),
		Digest:    res.Root.Digest.String(),
		MediaType: res.Root.MediaType,
		Size:      res.Root.Size,
		Version:   version,
		Tags:      tags,
	}
	rec.Images = pipeline.Images(res)
	return rec
}

// imageOptions parses the options every build shares: --format,
// --compression, --created and --temp-dir.
func (o *buildOptions) imageOptions() (containerdisk.Options, error) {
	format, err := containerdisk.ParseFormat(o.format)
	if err != nil {
		return containerdisk.Options{}, err
	}
	compression, err := containerdisk.ParseCompression(o.compression)
	if err != nil {
		return containerdisk.Options{}, err
	}
	created, err := option.ParseCreated(o.created)
	if err != nil {
		return containerdisk.Options{}, err
	}
	return containerdisk.Options{Format: format, Compression: compression, Created: created, TempDir: o.tempDir}, nil
}

func parseDisks(disks, checksums []string, name string) ([]containerdisk.Disk, error) {
	sums := map[string]containerdisk.Checksum{}
	for _, c := range checksums {
		arch, sum, ok := strings.Cut(c, "=")
		if !ok {
			arch, sum = "amd64", c
		}
		a, err := containerdisk.NormalizeArch(arch)
		if err != nil {
			return nil, err
		}
		cs, err := containerdisk.ParseChecksum(sum)
		if err != nil {
			return nil, err
		}
		sums[a] = cs
	}
	var out []containerdisk.Disk
	for _, d := range disks {
		arch, path, ok := strings.Cut(d, "=")
		if !ok {
			arch, path = "amd64", d
		}
		a, err := containerdisk.NormalizeArch(arch)
		if err != nil {
			return nil, err
		}
		if path == "" {
			return nil, cli.Usagef("--disk %q has no file: expected ARCH=FILE", d)
		}
		if _, err := os.Stat(path); err != nil {
			return nil, cli.Usagef("disk file %q: %v", path, unwrapPathError(err))
		}
		out = append(out, containerdisk.Disk{Architecture: a, Path: path, Name: name, Checksum: sums[a]})
		delete(sums, a)
	}
	for a := range sums {
		return nil, cli.Usagef("--checksum for %s, but no --disk for %s", a, a)
	}
	return out, nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func parseKeyValues(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, cli.Usagef("%s %q: expected KEY=VALUE", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

// Main runs the command as the process and returns its exit code.
func Main() int { return cli.Main(NewCommand) }
