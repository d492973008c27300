// Package target parses the image references the tool accepts and opens them
// as oras-go targets: a repository in an OCI registry ("host[:port]/repo:tag"),
// an OCI image layout directory ("oci:DIR[:REF]") or an OCI archive, a tar
// of a layout ("oci-archive:FILE[:REF]").
//
// # References
//
// Every command reads references with Parse, one grammar:
//
//	host[:port]/repository[:tag|@digest]   a registry (host has a dot or a port, or is localhost)
//	oci:DIR[:REF|@digest]                  an OCI image layout directory
//	oci-archive:FILE[:REF|@digest]         an OCI archive (read; mirror writes them)
//
// In a layout or archive, REF is the name an image has in its index.json
// (the org.opencontainers.image.ref.name annotation): a tag ("41") or, where
// one layout holds several repositories as mirror writes them, REPO:TAG
// ("fedora:41", "quay.io/containerdisks/fedora:41"). As in skopeo and
// podman (containers/image's oci and oci-archive transports), DIR ends at
// the first colon and REF is all that follows it, so that
// "oci:mirror:fedora:41" is the image "fedora:41" of the layout "mirror";
// a directory whose path holds a colon cannot be named (name it by a
// relative path or a link), except for a Windows drive letter
// ("oci:C:\layouts\cd:41"). A digest follows an "@" instead:
// "oci:DIR@sha256:…" (or ":sha256:…").
package target

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/containerdisk/kubectl-containerdisk/pkg/readlimit"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upload"
)

// Prefixes of the references to local images.
const (
	// LayoutPrefix marks a reference to an OCI image layout directory.
	LayoutPrefix = "oci:"
	// ArchivePrefix marks a reference to an OCI archive: one uncompressed
	// tar of an OCI image layout.
	ArchivePrefix = "oci-archive:"
)

// Kind says where a reference points.
type Kind int

const (
	// KindRegistry is a repository in an OCI distribution registry.
	KindRegistry Kind = iota
	// KindLayout is an OCI image layout directory on the local file system.
	KindLayout
	// KindArchive is an OCI archive, a tar of an OCI image layout, on the
	// local file system. It is read in place; only mirror writes one.
	KindArchive
)

// Reference is a parsed image reference.
type Reference struct {
	Kind Kind
	// Path is the layout directory (KindLayout) or the archive file
	// (KindArchive).
	Path string
	// Registry is the registry host with optional port (KindRegistry).
	Registry string
	// Repository is the repository name inside the registry (KindRegistry).
	Repository string
	// Reference is the tag or digest; empty when none was given. In a
	// layout or archive, a tag is the image's name in index.json, which
	// may be REPO:TAG (see the package doc).
	Reference string
}

// InvalidReferenceError reports a reference that cannot be parsed.
type InvalidReferenceError struct {
	Input  string
	Reason string
}

func (e *InvalidReferenceError) Error() string {
	r := e.Redacted()
	return fmt.Sprintf("invalid reference %q: %s; expected %s", r.Input, r.Reason, ExpectedReference)
}

// InputError marks the error as the input's, so that a command exits 2.
func (e *InvalidReferenceError) InputError() bool { return true }

// ExpectedReference says what a reference looks like, for error messages.
const ExpectedReference = `a registry reference like "registry.example.com/containerdisks/fedora:41", an OCI layout like "oci:./layout:41" or an OCI archive like "oci-archive:cd.tar:fedora:41"`

// Redacted returns the error with the user name and password the input
// carried before its host replaced by "***", in the input and the reason.
func (e *InvalidReferenceError) Redacted() *InvalidReferenceError {
	r := *e
	if u := userinfo(e.Input); u != "" {
		r.Input = strings.ReplaceAll(r.Input, u+"@", "***@")
		r.Reason = strings.ReplaceAll(r.Reason, u+"@", "***@")
	}
	return &r
}

// Redact returns s with the user name and password a registry reference or
// URL may carry before its host ("user:pw@host/repo") replaced by "***",
// so that an error echoing what was given never shows a password.
func Redact(s string) string {
	if u := userinfo(s); u != "" {
		return strings.ReplaceAll(s, u+"@", "***@")
	}
	return s
}

// userinfo is the "user:password" part of a registry reference or URL,
// before the "@" of its host; empty when there is none. Layout and archive
// paths, where "@" starts a digest, have none.
func userinfo(s string) string {
	if strings.HasPrefix(s, LayoutPrefix) || strings.HasPrefix(s, ArchivePrefix) {
		return ""
	}
	if _, rest, ok := strings.Cut(s, "://"); ok {
		s = rest
	}
	host, _, _ := strings.Cut(s, "/")
	if i := strings.LastIndex(host, "@"); i > 0 {
		return host[:i]
	}
	return ""
}

// Parse parses s as a registry reference (host[:port]/repo[:tag|@digest]),
// an OCI layout reference (oci:DIR[:REF|@digest]) or an OCI archive
// reference (oci-archive:FILE[:REF|@digest]); see the package doc. Every
// error is an *InvalidReferenceError.
func Parse(s string) (Reference, error) {
	if s == "" {
		return Reference{}, &InvalidReferenceError{Input: s, Reason: "it is empty"}
	}
	if rest, ok := strings.CutPrefix(s, ArchivePrefix); ok {
		return parseLocal(s, rest, KindArchive)
	}
	if rest, ok := strings.CutPrefix(s, LayoutPrefix); ok {
		return parseLocal(s, rest, KindLayout)
	}
	if strings.Contains(s, "://") {
		return Reference{}, &InvalidReferenceError{Input: s, Reason: "a reference has no URL scheme"}
	}
	// Without a slash, oras-go would only say "missing registry or
	// repository" of a short name such as "fedora:41".
	if !strings.Contains(s, "/") {
		return Reference{}, &InvalidReferenceError{Input: s, Reason: `it has no "/": a registry reference is a registry host, "/" and a repository (host[:port]/repository), and short names are not looked up on a default registry`}
	}
	r, err := registry.ParseReference(s)
	if err != nil {
		return Reference{}, &InvalidReferenceError{Input: s, Reason: strings.TrimPrefix(err.Error(), "invalid reference: ")}
	}
	if err := checkHost(r.Registry); err != nil {
		return Reference{}, &InvalidReferenceError{Input: s, Reason: err.Error()}
	}
	return Reference{Kind: KindRegistry, Registry: r.Registry, Repository: r.Repository, Reference: r.Reference}, nil
}

// checkHost refuses a first path element that is no registry host, as
// docker reads "fedora/x" as a repository of Docker Hub.
func checkHost(host string) error {
	if !strings.ContainsAny(host, ".:") && host != "localhost" {
		return fmt.Errorf("%q is not a registry host (a host has a dot or a port, or is localhost)", host)
	}
	return nil
}

// ParsePrefix parses s as a place below which images are named, as
// mirror's sources and targets and push's and promote's --to are: a
// registry host with an optional repository path ("registry.local:5000",
// "quay.io/containerdisks"), "oci:DIR" or "oci-archive:FILE". It names no
// tag or digest. Every error is an *InvalidReferenceError.
func ParsePrefix(s string) (Reference, error) {
	kind := KindRegistry
	switch {
	case strings.HasPrefix(s, LayoutPrefix):
		kind = KindLayout
	case strings.HasPrefix(s, ArchivePrefix):
		kind = KindArchive
	}
	if kind == KindRegistry && s != "" && !strings.Contains(s, "://") && !strings.Contains(s, "/") {
		// A host alone: its syntax is checked with a repository below it.
		if err := checkHost(s); err != nil {
			return Reference{}, &InvalidReferenceError{Input: s, Reason: err.Error()}
		}
		if _, err := Parse(s + "/x"); err != nil {
			return Reference{}, &InvalidReferenceError{Input: s, Reason: fmt.Sprintf("%q is not a registry host[:port]", s)}
		}
		return Reference{Kind: KindRegistry, Registry: s}, nil
	}
	ref, err := Parse(s)
	if err != nil {
		return Reference{}, err
	}
	if ref.Reference != "" {
		reason := fmt.Sprintf("it names the image %q: expected a prefix without a tag or digest, below which each image gets its own name", ref.Reference)
		if kind != KindRegistry && !ref.IsDigest() {
			reason += fmt.Sprintf(" (a path ends at its first colon: %q is read as the path %q and the image %q)", s, ref.Path, ref.Reference)
		}
		return Reference{}, &InvalidReferenceError{Input: s, Reason: reason}
	}
	return ref, nil
}

// refNameRE is the grammar of the org.opencontainers.image.ref.name
// annotation (OCI image spec, annotations.md), which containers/image
// checks the names of oci: and oci-archive: references against.
var refNameRE = regexp.MustCompile(`^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$`)

// windowsDriveRE is a Windows path's drive letter and its separator.
var windowsDriveRE = regexp.MustCompile(`^[A-Za-z]:[\\/]`)

// digestAlgorithmRE matches what follows the "@" of PATH@DIGEST: an
// algorithm and a colon. An "@" followed by anything else belongs to the
// path.
var digestAlgorithmRE = regexp.MustCompile(`^[a-z0-9]+(?:[+._-][a-z0-9]+)*:`)

// parseLocal parses what follows the prefix of a layout or archive
// reference: PATH, PATH:REF or PATH@DIGEST. The path ends at the first
// colon after a Windows drive letter, as in containers/image.
func parseLocal(input, rest string, kind Kind) (Reference, error) {
	what := "the layout directory"
	if kind == KindArchive {
		what = "the archive file"
	}
	ref := Reference{Kind: kind, Path: rest}
	skip := 0
	if windowsDriveRE.MatchString(rest) {
		skip = 2
	}
	colon := strings.IndexByte(rest[skip:], ':')
	if colon >= 0 {
		colon += skip
	}
	at := strings.LastIndexByte(rest, '@')
	switch {
	case at >= 0 && (colon < 0 || at < colon) && digestAlgorithmRE.MatchString(rest[at+1:]):
		// PATH@DIGEST: the digest's own colon comes after the "@".
		ref.Path, ref.Reference = rest[:at], rest[at+1:]
		if _, err := digest.Parse(ref.Reference); err != nil {
			return Reference{}, &InvalidReferenceError{Input: input, Reason: fmt.Sprintf("%q is not a digest: expected @sha256: and 64 lowercase hex digits after %s", ref.Reference, what)}
		}
	case colon >= 0:
		ref.Path, ref.Reference = rest[:colon], rest[colon+1:]
		if err := checkLocalRef(ref.Reference); err != nil {
			return Reference{}, &InvalidReferenceError{Input: input, Reason: err.Error()}
		}
	}
	if ref.Path == "" {
		return Reference{}, &InvalidReferenceError{Input: input, Reason: what + " is empty"}
	}
	return ref, nil
}

// checkLocalRef checks the REF of oci:DIR:REF: a digest, a tag, or a name
// as index.json records it (REPO:TAG).
func checkLocalRef(ref string) error {
	if ref == "" {
		return errors.New(`nothing follows the ":": expected a tag or REPO:TAG after it, or no ":"`)
	}
	if strings.HasPrefix(ref, "sha256:") || strings.HasPrefix(ref, "sha512:") {
		if _, err := digest.Parse(ref); err != nil {
			return fmt.Errorf("%q is not a digest: expected sha256: and 64 lowercase hex digits", ref)
		}
		return nil
	}
	if ValidateTag(ref) == nil || refNameRE.MatchString(ref) {
		return nil
	}
	return fmt.Errorf("%q is not a valid tag or image name: expected a tag (letters, digits, _ . and -) or REPO:TAG as mirror names images in a layout; a path ends at its first colon", ref)
}

// ValidateTag checks that t is a tag: up to 128 letters, digits, _ . and
// -, not starting with . or -.
func ValidateTag(t string) error {
	if err := (registry.Reference{Registry: "x", Repository: "x", Reference: t}).ValidateReferenceAsTag(); err != nil {
		return fmt.Errorf("%q is not a tag (up to 128 letters, digits, _ . and -, not starting with . or -)", t)
	}
	return nil
}

// ValidateRepository checks that r is a repository path: lowercase
// letters and digits separated by . _ __ or -, in elements separated by /.
func ValidateRepository(r string) error {
	if r == "" {
		return errors.New("missing: expected a repository path such as containerdisks/fedora")
	}
	if err := (registry.Reference{Registry: "x", Repository: r}).ValidateRepository(); err == nil {
		return nil
	}
	for _, e := range strings.Split(r, "/") {
		if e == "" {
			return fmt.Errorf("%q has an empty element (a leading, trailing or double /)", r)
		}
		if (registry.Reference{Registry: "x", Repository: e}).ValidateRepository() != nil {
			if e == r {
				return fmt.Errorf("%q is not lowercase letters and digits separated by . _ or -", r)
			}
			return fmt.Errorf("%q: %q is not lowercase letters and digits separated by . _ or -", r, e)
		}
	}
	return fmt.Errorf("%q is not a repository path", r)
}

// String formats the reference the way Parse reads it.
func (r Reference) String() string {
	var base string
	switch r.Kind {
	case KindLayout:
		base = LayoutPrefix + r.Path
	case KindArchive:
		base = ArchivePrefix + r.Path
	default:
		base = r.Registry
		if r.Repository != "" {
			base += "/" + r.Repository
		}
	}
	return base + r.suffix()
}

func (r Reference) suffix() string {
	switch {
	case r.Reference == "":
		return ""
	case r.IsDigest():
		return "@" + r.Reference
	default:
		return ":" + r.Reference
	}
}

// IsLocal reports whether the reference is on the local file system: an
// OCI layout or archive.
func (r Reference) IsLocal() bool { return r.Kind == KindLayout || r.Kind == KindArchive }

// IsDigest reports whether the reference names a digest.
func (r Reference) IsDigest() bool {
	_, err := digest.Parse(r.Reference)
	return err == nil
}

// IsTag reports whether the reference names a tag (not a digest, not
// empty): in a layout or archive, a name of its index.json.
func (r Reference) IsTag() bool {
	return r.Reference != "" && !r.IsDigest()
}

// Tag returns the registry tag the reference's tag stands for: the tag
// itself, or in a layout or archive the TAG of a REPO:TAG name. It is
// empty for a digest or no reference.
func (r Reference) Tag() string {
	if !r.IsTag() {
		return ""
	}
	if r.IsLocal() {
		return r.Reference[strings.LastIndexByte(r.Reference, ':')+1:]
	}
	return r.Reference
}

// Name returns the last element of the repository the reference names:
// of a registry repository, of the REPO of a REPO:TAG name in a layout or
// archive, or else the base name of the directory or of the archive
// without its extension. promote names what it copies below --to by it.
func (r Reference) Name() string {
	if r.Kind == KindRegistry {
		return r.Repository[strings.LastIndexByte(r.Repository, '/')+1:]
	}
	if repo, _, ok := cutLast(r.Reference, ":"); ok && r.IsTag() {
		return repo[strings.LastIndexByte(repo, '/')+1:]
	}
	base := filepath.Base(filepath.FromSlash(r.Path))
	if r.Kind == KindArchive {
		base = strings.TrimSuffix(base, filepath.Ext(base))
	}
	return base
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// WithReference returns a copy of r that names tag or digest ref instead.
func (r Reference) WithReference(ref string) Reference {
	r.Reference = ref
	return r
}

// Repo names the repository without tag or digest: "host/repo",
// "oci:DIR" or "oci-archive:FILE".
func (r Reference) Repo() string {
	return r.WithReference("").String()
}

// Image returns the reference of the image name:tag below the prefix r, as
// mirror names images: "host/prefix/name:tag" in a registry; in a layout
// or archive, the name "name:tag" of its index.json ("oci:DIR:name:tag"),
// as skopeo and podman name images that share one layout. A digest in
// place of tag gives "host/prefix/name@digest", and in a layout the digest
// alone.
func (r Reference) Image(name, tag string) Reference {
	if !r.IsLocal() {
		r = r.Join(name)
		r.Reference = tag
		return r
	}
	if _, err := digest.Parse(tag); err == nil {
		r.Reference = tag
	} else {
		r.Reference = name + ":" + tag
	}
	return r
}

// ImageTags returns, of the names in a layout or archive, the tags of the
// images named name:TAG, in order; as Image names them.
func ImageTags(names []string, name string) []string {
	var tags []string
	for _, n := range names {
		if repo, tag, ok := cutLast(n, ":"); ok && repo == name {
			tags = append(tags, tag)
		}
	}
	return tags
}

// RemoteOptions configures access to registries.
type RemoteOptions struct {
	// PlainHTTP talks HTTP instead of HTTPS. When nil, plain HTTP is used for
	// loopback hosts (localhost, 127.0.0.0/8, ::1) only, as docker does.
	PlainHTTP *bool
	// Insecure skips TLS certificate verification.
	Insecure bool
	// CAFile is a PEM bundle of extra certificate authorities to trust.
	CAFile string
	// CertDir is a directory of certificates for the registry, read as
	// containers/image (skopeo --cert-dir) reads one: each *.crt is a PEM
	// bundle of certificate authorities to trust besides the system's,
	// and each *.cert is a client certificate whose key is the *.key of
	// the same name. Other files are ignored.
	CertDir string
	// Credential, when it is not empty, logs in to the registry of the
	// repository opened, in place of what the credential store holds for
	// that host (other hosts still come from the store). Its secrets are
	// never part of an error.
	Credential auth.Credential
	// RegistryConfig is a Docker config file with credentials; empty means
	// the default ($DOCKER_CONFIG/config.json or ~/.docker/config.json).
	RegistryConfig string
	// UserAgent is sent with every request.
	UserAgent string
	// Retries is how many times a request is sent again after a 429, a
	// 502, 503 or 504, or a reset, closed or timed-out connection, waiting
	// longer each time (or as long as the registry's Retry-After says, up
	// to a minute). Only requests that can be sent again as they were are
	// retried: those without a body or whose body can be rewound. 5 when
	// zero; none when negative.
	Retries int
	// StallTimeout is how long a registry may leave a request without
	// progress: to accept the connection, finish the TLS handshake, take
	// the next bytes of the request's body, start its answer or send the
	// next bytes of it. A request that stalls fails with a *StallError
	// naming the host, and is sent again once (when it can be). A slow
	// transfer that keeps moving is not limited. DefaultStallTimeout when
	// zero; no limit when negative.
	StallTimeout time.Duration
	// MaxConcurrency limits the requests in flight to each registry host,
	// shared by every repository opened in the process with the same
	// limit; unlimited when zero. Response bodies being read do not count.
	MaxConcurrency int
	// Log, when set, is told of each retry and of each refusal to wait
	// for a registry's too distant Retry-After.
	Log func(format string, args ...any)
}

// Open opens the reference as a target to write to. Layout directories
// are created when missing. A registry repository is an
// *upload.Repository: each blob goes up in one PUT, as most clients send
// them (some registries take no chunks), and an upload cut midway is
// resumed from what the registry holds (told to opts.Log).
func Open(ctx context.Context, ref Reference, opts RemoteOptions) (oras.GraphTarget, error) {
	switch ref.Kind {
	case KindLayout:
		return OpenLayout(ctx, ref.Path)
	case KindArchive:
		return nil, &InvalidReferenceError{Input: ref.String(), Reason: "an OCI archive is read here, not written: write to an OCI layout (oci:DIR), or mirror to oci-archive:FILE"}
	}
	repo, err := OpenRepository(ref, opts)
	if err != nil {
		return nil, err
	}
	var onResume func(ocispec.Descriptor, int64)
	if opts.Log != nil {
		onResume = func(d ocispec.Descriptor, off int64) {
			opts.Log("upload of blob %s (%d bytes) to %s was cut: resuming at byte %d", d.Digest, d.Size, ref, off)
		}
	}
	return upload.NewRepository(repo, upload.Uploader{OnResume: onResume}), nil
}

// OpenSource opens the reference for reading: a registry repository, a
// layout directory or an archive. Unlike Open, it never creates anything:
// a missing layout is an error that says so. An archive is an *Archive,
// which holds its file open until closed: the caller closes what it gets
// when it is an io.Closer.
func OpenSource(ctx context.Context, ref Reference, opts RemoteOptions) (oras.ReadOnlyGraphTarget, error) {
	switch ref.Kind {
	case KindRegistry:
		return OpenRepository(ref, opts)
	case KindArchive:
		return OpenArchive(ctx, ref.Path)
	}
	if _, err := os.Stat(filepath.Join(ref.Path, ocispec.ImageLayoutFile)); err != nil {
		return nil, fmt.Errorf("opening %s: %q is not an OCI image layout (no %s file): expected a directory written by 'kubectl containerdisk build' or mirror (a path ends at its first colon: oci:DIR:NAME:TAG)", ref, ref.Path, ocispec.ImageLayoutFile)
	}
	return OpenLayoutFS(ctx, os.DirFS(ref.Path), ref.Path, false)
}

// OpenRepository returns a client for a registry repository.
func OpenRepository(ref Reference, opts RemoteOptions) (*remote.Repository, error) {
	if ref.Kind != KindRegistry {
		return nil, fmt.Errorf("opening %s: not a registry reference", ref)
	}
	repo, err := remote.NewRepository(ref.Registry + "/" + ref.Repository)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", ref, err)
	}
	repo.PlainHTTP = isLoopback(ref.Registry)
	if opts.PlainHTTP != nil {
		repo.PlainHTTP = *opts.PlainHTTP
	}
	client, err := newClient(opts, ref.Registry)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", ref, err)
	}
	repo.Client = client
	// Scratch images and indexes of many platforms stay small; the default
	// 4 MiB limit on manifests is kept.
	return repo, nil
}

// LoadCAFile returns the system's certificate authorities with those of the
// PEM bundle at path added. The file is read up to readlimit.Secret bytes: a
// longer one is a *readlimit.LimitError.
func LoadCAFile(ctx context.Context, path string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if err := appendCAFile(ctx, pool, path); err != nil {
		return nil, err
	}
	return pool, nil
}

// appendCAFile adds the certificates of the PEM bundle at path to pool.
func appendCAFile(ctx context.Context, pool *x509.CertPool, path string) error {
	pem, err := readlimit.ReadFile(ctx, path, readlimit.Secret, "a CA file")
	if err != nil {
		return fmt.Errorf("reading CA file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("reading CA file %q: no PEM certificate found; expected a PEM bundle such as the registry's ca.crt", path)
	}
	return nil
}

// newClient returns the client of a repository on the registry host.
func newClient(opts RemoteOptions, host string) (*auth.Client, error) {
	transport := newBaseTransport(opts)
	if opts.Insecure || opts.CAFile != "" || opts.CertDir != "" {
		cfg, err := tlsConfig(opts)
		if err != nil {
			return nil, err
		}
		transport.TLSClientConfig = cfg
	}
	var store *credentials.DynamicStore
	var err error
	storeOpts := credentials.StoreOptions{DetectDefaultNativeStore: true}
	if opts.RegistryConfig != "" {
		store, err = credentials.NewStore(opts.RegistryConfig, storeOpts)
	} else {
		store, err = credentials.NewStoreFromDocker(storeOpts)
	}
	if err != nil {
		return nil, fmt.Errorf("loading registry credentials: %w", err)
	}
	cred := credential(store)
	if opts.Credential != auth.EmptyCredential {
		fromStore := cred
		cred = func(ctx context.Context, hostport string) (auth.Credential, error) {
			if hostport == host {
				return opts.Credential, nil
			}
			return fromStore(ctx, hostport)
		}
	}
	client := &auth.Client{
		Client:     &http.Client{Transport: newRetryTransport(transport, opts)},
		Cache:      auth.NewCache(),
		Credential: cred,
	}
	if opts.UserAgent != "" {
		client.SetUserAgent(opts.UserAgent)
	}
	return client, nil
}

// tlsConfig is the TLS configuration of opts: verification, the CA file and
// the certificate directory.
func tlsConfig(opts RemoteOptions) (*tls.Config, error) {
	cfg := &tls.Config{InsecureSkipVerify: opts.Insecure} //nolint:gosec // asked for with --insecure
	if opts.CAFile == "" && opts.CertDir == "" {
		return cfg, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if opts.CAFile != "" {
		// The file is bounded; commands check it with their context
		// before they get here.
		if err := appendCAFile(context.Background(), pool, opts.CAFile); err != nil {
			return nil, err
		}
	}
	if opts.CertDir != "" {
		if err := loadCertDir(opts.CertDir, cfg, pool); err != nil {
			return nil, err
		}
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// loadCertDir adds the certificates of dir to cfg as containers/image's
// tlsclientconfig.SetupCertificates does: *.crt to the trusted authorities
// (pool), each *.cert with its *.key as a client certificate. A directory
// that cannot be read is an error here (containers/image skips a missing
// one): a certificate directory was asked for by name.
func loadCertDir(dir string, cfg *tls.Config, pool *x509.CertPool) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading certificate directory: %w; expected a directory of *.crt CA certificates and *.cert/*.key client pairs", err)
	}
	has := func(name string) bool {
		for _, e := range entries {
			if e.Name() == name {
				return true
			}
		}
		return false
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		switch {
		case strings.HasSuffix(name, ".crt"):
			if err := appendCAFile(context.Background(), pool, path); err != nil {
				return fmt.Errorf("reading certificate directory: %w", err)
			}
		case strings.HasSuffix(name, ".cert"):
			key := strings.TrimSuffix(name, ".cert") + ".key"
			if !has(key) {
				return fmt.Errorf("reading certificate directory %s: the client certificate %s has no key %s (a CA certificate is named *.crt)", dir, name, key)
			}
			certPEM, err := readlimit.ReadFile(context.Background(), path, readlimit.Secret, "a client certificate")
			if err != nil {
				return fmt.Errorf("reading certificate directory %s: %w", dir, err)
			}
			keyPEM, err := readlimit.ReadFile(context.Background(), filepath.Join(dir, key), readlimit.Secret, "a client key")
			if err != nil {
				return fmt.Errorf("reading certificate directory %s: %w", dir, err)
			}
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				return fmt.Errorf("reading certificate directory %s: the client certificate %s and key %s: %w", dir, name, key, err)
			}
			cfg.Certificates = append(cfg.Certificates, pair)
		case strings.HasSuffix(name, ".key"):
			if cert := strings.TrimSuffix(name, ".key") + ".cert"; !has(cert) {
				return fmt.Errorf("reading certificate directory %s: the key %s has no client certificate %s", dir, name, cert)
			}
		}
	}
	return nil
}

// credential looks a registry's credentials up in store, with errors that
// keep them secret.
func credential(store *credentials.DynamicStore) auth.CredentialFunc {
	get := credentials.Credential(store)
	return func(ctx context.Context, hostport string) (auth.Credential, error) {
		cred, err := get(ctx, hostport)
		if err == nil {
			return cred, nil
		}
		e := &credentialError{host: hostport, config: store.ConfigPath(), err: err}
		if isConfigFormat(err) {
			e.err = nil
		}
		return auth.EmptyCredential, e
	}
}

// credentialError reports credentials that could not be read for a
// registry. A malformed entry in the config file is reported without
// oras-go's error, which quotes the decoded "auth" value, a secret, when it
// has no colon (as when it holds a bare token).
type credentialError struct {
	host, config string
	// err is nil for a malformed entry.
	err error
}

func (e *credentialError) Error() string {
	if e.err == nil {
		return fmt.Sprintf(`reading the credentials for %s from %s: its "auths" entry for the host is malformed; expected "auth" to be base64 of "user:password", as "docker login %s" writes it`, e.host, e.config, e.host)
	}
	return fmt.Sprintf("reading the credentials for %s from %s: %v", e.host, e.config, e.err)
}

func (e *credentialError) Unwrap() error { return e.err }

// configFormatText is the text of oras-go's ErrInvalidConfigFormat, which
// lives in an internal package that errors.Is cannot name. Should it change,
// TestCredentials sees the secret in the error.
const configFormatText = "invalid config format"

func isConfigFormat(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == configFormatText {
			return true
		}
	}
	return false
}

func isLoopback(host string) bool {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// AbsLayoutPath makes a layout reference's path absolute, so records passed
// between commands in other directories still resolve.
func AbsLayoutPath(ref Reference) Reference {
	if ref.IsLocal() {
		// A path with a colon could not be read back (see Parse): the
		// path as given is kept then.
		if abs, err := filepath.Abs(ref.Path); err == nil && !strings.Contains(strings.TrimPrefix(abs, filepath.VolumeName(abs)), ":") {
			ref.Path = abs
		}
	}
	return ref
}

// Join returns the repository (or layout directory) name below r, without a
// tag: "host/containerdisks" joined with "fedora" is "host/containerdisks/fedora",
// "oci:DIR" is "oci:DIR/fedora".
func (r Reference) Join(name string) Reference {
	switch {
	case r.IsLocal():
		r.Path = strings.TrimSuffix(r.Path, "/") + "/" + name
	case r.Repository == "":
		r.Repository = name
	default:
		r.Repository = strings.TrimSuffix(r.Repository, "/") + "/" + name
	}
	r.Reference = ""
	return r
}
