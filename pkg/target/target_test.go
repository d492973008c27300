package target_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/internal/testregistry"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

const digest = "sha256:4355a46b19d348dc2f57c046f8ef63d4538ebb936000f3c9ee954a27460dd865"

// TestParse is the one reference grammar every command reads: registry
// references, and OCI layouts and archives whose path ends at the first
// colon, as containers/image (skopeo, podman) reads oci: and oci-archive:.
func TestParse(t *testing.T) {
	layout := func(path, ref string) target.Reference {
		return target.Reference{Kind: target.KindLayout, Path: path, Reference: ref}
	}
	archive := func(path, ref string) target.Reference {
		return target.Reference{Kind: target.KindArchive, Path: path, Reference: ref}
	}
	tests := []struct {
		in   string
		want target.Reference
		// back is what String gives when it is not the input.
		back string
		// tag and name are what Tag and Name give.
		tag, name string
	}{
		{in: "localhost:5000/a/b:tag", want: target.Reference{Kind: target.KindRegistry, Registry: "localhost:5000", Repository: "a/b", Reference: "tag"}, tag: "tag", name: "b"},
		{in: "127.0.0.1:5000/x@" + digest, want: target.Reference{Kind: target.KindRegistry, Registry: "127.0.0.1:5000", Repository: "x", Reference: digest}, name: "x"},
		{in: "[::1]:5000/x:1", want: target.Reference{Kind: target.KindRegistry, Registry: "[::1]:5000", Repository: "x", Reference: "1"}, tag: "1", name: "x"},
		{in: "registry.example.com/containerdisks/fedora:41", want: target.Reference{Kind: target.KindRegistry, Registry: "registry.example.com", Repository: "containerdisks/fedora", Reference: "41"}, tag: "41", name: "fedora"},
		{in: "registry.example.com:443/containerdisks/fedora:41@" + digest, want: target.Reference{Kind: target.KindRegistry, Registry: "registry.example.com:443", Repository: "containerdisks/fedora", Reference: digest}, back: "registry.example.com:443/containerdisks/fedora@" + digest, name: "fedora"},
		{in: "localhost/fedora", want: target.Reference{Kind: target.KindRegistry, Registry: "localhost", Repository: "fedora"}, name: "fedora"},

		{in: "oci:dir", want: layout("dir", ""), name: "dir"},
		{in: "oci:dir:tag", want: layout("dir", "tag"), tag: "tag", name: "dir"},
		{in: "oci:./a/b:tag", want: layout("./a/b", "tag"), tag: "tag", name: "b"},
		{in: "oci:/abs/dir@" + digest, want: layout("/abs/dir", digest), name: "dir"},
		{in: "oci:dir:" + digest, want: layout("dir", digest), back: "oci:dir@" + digest, name: "dir"},
		// The names mirror writes into one layout: REPO:TAG.
		{in: "oci:mirror:fedora:41", want: layout("mirror", "fedora:41"), tag: "41", name: "fedora"},
		{in: "oci:mirror:quay.io/containerdisks/fedora:41", want: layout("mirror", "quay.io/containerdisks/fedora:41"), tag: "41", name: "fedora"},
		{in: "oci:mirror:localhost_5000/app:1.0", want: layout("mirror", "localhost_5000/app:1.0"), tag: "1.0", name: "app"},
		// The path ends at its first colon, as in skopeo: what follows
		// is the name, however many colons and slashes it has.
		{in: "oci:a:b/c", want: layout("a", "b/c"), tag: "b/c", name: "a"},
		{in: "oci:/srv/a:b/layout:41", want: layout("/srv/a", "b/layout:41"), tag: "41", name: "layout"},
		// An "@" that starts no digest belongs to the path.
		{in: "oci:/home/u@host/layout:41", want: layout("/home/u@host/layout", "41"), tag: "41", name: "layout"},
		// A Windows drive letter is part of the path.
		{in: `oci:C:\layouts\cd:41`, want: layout(`C:\layouts\cd`, "41"), tag: "41"},
		{in: "oci:C:/layouts/cd", want: layout("C:/layouts/cd", ""), name: "cd"},

		{in: "oci-archive:cd.tar", want: archive("cd.tar", ""), name: "cd"},
		{in: "oci-archive:cd.tar:fedora:41", want: archive("cd.tar", "fedora:41"), tag: "41", name: "fedora"},
		{in: "oci-archive:/media/usb/cd.tar:42", want: archive("/media/usb/cd.tar", "42"), tag: "42", name: "cd"},
		{in: "oci-archive:cd.tar@" + digest, want: archive("cd.tar", digest), name: "cd"},
	}
	for _, tt := range tests {
		got, err := target.Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		back := tt.back
		if back == "" {
			back = tt.in
		}
		if s := got.String(); s != back {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, s, back)
		}
		if again, err := target.Parse(got.String()); err != nil || again != got {
			t.Errorf("Parse(%q) = %+v, %v; want %+v again", got.String(), again, err, got)
		}
		if tag := got.Tag(); tag != tt.tag {
			t.Errorf("Parse(%q).Tag() = %q, want %q", tt.in, tag, tt.tag)
		}
		if tt.name != "" && got.Name() != tt.name {
			t.Errorf("Parse(%q).Name() = %q, want %q", tt.in, got.Name(), tt.name)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		in   string
		want string // in the reason
	}{
		{"", "it is empty"},
		{"https://r/x", "no URL scheme"},
		{"Registry.Example.com/UPPER:1", `invalid repository "UPPER"`},
		// Short names are refused, not completed to docker.io.
		{"fedora:41", `it has no "/": a registry reference is a registry host, "/" and a repository`},
		{"localhost:5000", `it has no "/"`},
		{"fedora/x:41", `"fedora" is not a registry host`},
		{"r.example/x:bad tag", `invalid tag "bad tag"`},
		{"oci:", "the layout directory is empty"},
		{"oci::tag", "the layout directory is empty"},
		{"oci-archive:", "the archive file is empty"},
		{"oci-archive::41", "the archive file is empty"},
		{"oci:dir:", `nothing follows the ":"`},
		{"oci:dir:bad tag", `"bad tag" is not a valid tag or image name`},
		{"oci:dir:fedora:", `"fedora:" is not a valid tag or image name`},
		{"oci-archive:cd.tar:a//b:1", `"a//b:1" is not a valid tag or image name`},
		{"oci:dir@sha256:zz", `"sha256:zz" is not a digest`},
		{"oci:dir:sha256:zz", `"sha256:zz" is not a digest`},
		{"oci-archive:cd.tar@sha512:00", `"sha512:00" is not a digest`},
	}
	for _, tt := range tests {
		ref, err := target.Parse(tt.in)
		var ierr *target.InvalidReferenceError
		if !errors.As(err, &ierr) {
			t.Errorf("Parse(%q) = %+v, %v; want an *InvalidReferenceError", tt.in, ref, err)
			continue
		}
		if ierr.Input != tt.in || !strings.Contains(ierr.Reason, tt.want) {
			t.Errorf("Parse(%q): input %q, reason %q; want the input and a reason saying %q", tt.in, ierr.Input, ierr.Reason, tt.want)
		}
		// Every refusal shows what a good reference looks like.
		if msg := err.Error(); !strings.Contains(msg, "registry.example.com/containerdisks/fedora:41") || !strings.Contains(msg, "oci:./layout:41") || !strings.Contains(msg, "oci-archive:") {
			t.Errorf("Parse(%q): error %q gives no example", tt.in, msg)
		}
	}
}

// TestParsePrefix reads the places images are named below: mirror's
// sources and targets, push's and promote's --to.
func TestParsePrefix(t *testing.T) {
	good := []struct {
		in   string
		want target.Reference
		// image is Image("fedora", "41") of it.
		image string
	}{
		{"quay.io", target.Reference{Kind: target.KindRegistry, Registry: "quay.io"}, "quay.io/fedora:41"},
		{"localhost:5000", target.Reference{Kind: target.KindRegistry, Registry: "localhost:5000"}, "localhost:5000/fedora:41"},
		{"quay.io/containerdisks", target.Reference{Kind: target.KindRegistry, Registry: "quay.io", Repository: "containerdisks"}, "quay.io/containerdisks/fedora:41"},
		{"oci:mirror", target.Reference{Kind: target.KindLayout, Path: "mirror"}, "oci:mirror:fedora:41"},
		{"oci-archive:/media/usb/cd.tar", target.Reference{Kind: target.KindArchive, Path: "/media/usb/cd.tar"}, "oci-archive:/media/usb/cd.tar:fedora:41"},
	}
	for _, tt := range good {
		got, err := target.ParsePrefix(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParsePrefix(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		if s := got.String(); s != tt.in {
			t.Errorf("ParsePrefix(%q).String() = %q, want the input back", tt.in, s)
		}
		img := got.Image("fedora", "41")
		if img.String() != tt.image {
			t.Errorf("ParsePrefix(%q).Image(fedora, 41) = %q, want %q", tt.in, img, tt.image)
		}
		// What mirror writes, every command reads back.
		if back, err := target.Parse(img.String()); err != nil || back != img {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", img, back, err, img)
		}
	}
	bad := []struct{ in, want string }{
		{"", "it is empty"},
		{"quay", `"quay" is not a registry host`},
		{"quay.io/containerdisks:41", `it names the image "41"`},
		{"oci:/srv/a:b", `a path ends at its first colon: "oci:/srv/a:b" is read as the path "/srv/a" and the image "b"`},
		{"http://quay.io", "no URL scheme"},
		{"quay.io/Upper", "invalid repository"},
	}
	for _, tt := range bad {
		got, err := target.ParsePrefix(tt.in)
		var ierr *target.InvalidReferenceError
		if !errors.As(err, &ierr) || !strings.Contains(ierr.Reason, tt.want) {
			t.Errorf("ParsePrefix(%q) = %+v, %v; want an *InvalidReferenceError saying %q", tt.in, got, err, tt.want)
		}
	}
}

func TestImageTags(t *testing.T) {
	names := []string{"fedora:41", "41", "quay.io/x/fedora:40", "fedora:42", "centos:10"}
	if got := target.ImageTags(names, "fedora"); strings.Join(got, ",") != "41,42" {
		t.Errorf("ImageTags(fedora) = %q, want [41 42]", got)
	}
	if got := target.ImageTags(names, "quay.io/x/fedora"); strings.Join(got, ",") != "40" {
		t.Errorf("ImageTags(quay.io/x/fedora) = %q, want [40]", got)
	}
}

// roundTrip pushes a blob and an image manifest holding it to repo, tags the
// manifest and resolves the tag: a write and a read of each kind.
func roundTrip(ctx context.Context, repo *remote.Repository) error {
	layer, err := oras.PushBytes(ctx, repo, ocispec.MediaTypeImageLayer, []byte("containerdisk"))
	if err != nil {
		return err
	}
	root, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.example.test", oras.PackManifestOptions{
		Layers:              []ocispec.Descriptor{layer},
		ManifestAnnotations: map[string]string{ocispec.AnnotationCreated: "2000-01-01T00:00:00Z"},
	})
	if err != nil {
		return err
	}
	if err := repo.Tag(ctx, root, "v1"); err != nil {
		return err
	}
	got, err := repo.Resolve(ctx, "v1")
	if err != nil {
		return err
	}
	if got.Digest != root.Digest {
		return fmt.Errorf("v1 resolves to %s, want %s", got.Digest, root.Digest)
	}
	return nil
}

// remoteCase is one way of opening a repository of a test registry and the
// outcome expected of OpenRepository (openErr) or of a round trip (err).
// An empty openErr and err ask for success.
type remoteCase struct {
	name string
	// host replaces the registry's own "127.0.0.1:PORT" when set.
	host    string
	opts    target.RemoteOptions
	openErr string
	err     func(error) bool
	// errDoc says what err looks for, for the failure message.
	errDoc string
	// unreached asks that no request reach the registry's handler, as when
	// the TLS handshake fails.
	unreached bool
}

// run opens a new repository of r for each case and checks the outcome.
// Every error must be free of each secret.
func run(t *testing.T, r *testregistry.Registry, tests []remoteCase, secrets ...string) {
	t.Helper()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := r.Host
			if tt.host != "" {
				host = tt.host
			}
			ref, err := target.Parse(fmt.Sprintf("%s/case%d:v1", host, i))
			if err != nil {
				t.Fatal(err)
			}
			r.ResetStats()
			repo, err := target.OpenRepository(ref, tt.opts)
			if err == nil {
				err = roundTrip(t.Context(), repo)
			} else if tt.openErr == "" {
				t.Fatalf("OpenRepository: %v", err)
			}
			if err != nil {
				t.Logf("error: %v", err)
				for _, s := range secrets {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q shows the secret %q", err, s)
					}
				}
			}
			switch {
			case tt.openErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.openErr) {
					t.Errorf("OpenRepository: %v, want an error saying %q", err, tt.openErr)
				}
			case tt.err != nil:
				if err == nil || !tt.err(err) {
					t.Errorf("round trip: %v, want %s", err, tt.errDoc)
				}
			case err != nil:
				t.Errorf("round trip: %v", err)
			}
			if got := r.Stats(); tt.unreached && got != (testregistry.Stats{}) {
				t.Errorf("the registry was asked:\n%s", got)
			}
		})
	}
}

func contains(s string) func(error) bool {
	return func(err error) bool { return strings.Contains(err.Error(), s) }
}

// status matches the error of a registry's answer with the status code.
func status(code int) func(error) bool {
	return func(err error) bool {
		var resp *errcode.ErrorResponse
		return errors.As(err, &resp) && resp.StatusCode == code
	}
}

func ptr[T any](v T) *T { return &v }

func TestPlainHTTP(t *testing.T) {
	r := testregistry.New(t)
	_, port, _ := strings.Cut(r.Host, ":")
	run(t, r, []remoteCase{
		{name: "loopback default", opts: target.RemoteOptions{}},
		{name: "localhost is loopback", host: "localhost:" + port, opts: target.RemoteOptions{}},
		{name: "plain HTTP asked for", opts: target.RemoteOptions{PlainHTTP: ptr(true)}},
		{
			name:      "HTTPS asked for",
			opts:      target.RemoteOptions{PlainHTTP: ptr(false)},
			err:       contains("server gave HTTP response to HTTPS client"),
			errDoc:    "an HTTP answer to an HTTPS client",
			unreached: true,
		},
		{
			// Verification has nothing to skip when HTTPS is not spoken.
			name: "insecure is still plain HTTP",
			opts: target.RemoteOptions{Insecure: true},
		},
	})
}

func TestTLS(t *testing.T) {
	r := testregistry.NewWithOptions(t, testregistry.Options{TLS: true})
	notPEM := filepath.Join(t.TempDir(), "ca.der")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.crt")
	https := ptr(false)

	run(t, r, []remoteCase{
		{
			name:      "system roots only",
			opts:      target.RemoteOptions{PlainHTTP: https},
			err:       contains("x509: certificate signed by unknown authority"),
			errDoc:    "an unknown authority error",
			unreached: true,
		},
		{name: "CA file", opts: target.RemoteOptions{PlainHTTP: https, CAFile: r.CAFile}},
		{name: "insecure", opts: target.RemoteOptions{PlainHTTP: https, Insecure: true}},
		{name: "insecure and CA file", opts: target.RemoteOptions{PlainHTTP: https, Insecure: true, CAFile: r.CAFile}},
		{
			// Loopback hosts default to plain HTTP: a TLS registry on one
			// needs PlainHTTP set to false.
			name:      "loopback default with CA file",
			opts:      target.RemoteOptions{CAFile: r.CAFile},
			err:       status(http.StatusBadRequest),
			errDoc:    "the 400 a TLS server answers plain HTTP with",
			unreached: true,
		},
		{
			name:    "CA file not PEM",
			opts:    target.RemoteOptions{PlainHTTP: https, CAFile: notPEM},
			openErr: fmt.Sprintf("reading CA file %q: no PEM certificate found", notPEM),
		},
		{
			name:    "CA file missing",
			opts:    target.RemoteOptions{PlainHTTP: https, CAFile: missing},
			openErr: "reading CA file: open " + missing + ": no such file or directory",
		},
		// A certificate directory as containers/image reads one.
		{name: "cert dir", opts: target.RemoteOptions{PlainHTTP: https, CertDir: certDir(t, r, "ca.crt")}},
		{name: "cert dir with a client pair", opts: target.RemoteOptions{PlainHTTP: https, CertDir: certDir(t, r, "ca.crt", "client.cert", "client.key")}},
		{
			name:      "cert dir without a .crt",
			opts:      target.RemoteOptions{PlainHTTP: https, CertDir: certDir(t, r, "ca.pem")},
			err:       contains("x509: certificate signed by unknown authority"),
			errDoc:    "an unknown authority error",
			unreached: true,
		},
		{
			name:    "cert dir with a client certificate and no key",
			opts:    target.RemoteOptions{PlainHTTP: https, CertDir: certDir(t, r, "ca.crt", "client.cert")},
			openErr: "the client certificate client.cert has no key client.key",
		},
		{
			name:    "cert dir with a key and no client certificate",
			opts:    target.RemoteOptions{PlainHTTP: https, CertDir: certDir(t, r, "ca.crt", "client.key")},
			openErr: "the key client.key has no client certificate client.cert",
		},
		{
			name:    "cert dir missing",
			opts:    target.RemoteOptions{PlainHTTP: https, CertDir: missing},
			openErr: "reading certificate directory: open " + missing + ": no such file or directory",
		},
	})
}

// certDir makes a certificate directory with the files named: the
// registry's CA certificate under a name ending in .crt or .pem, and a
// client certificate (.cert) and its key (.key) made up here.
func certDir(t *testing.T, r *testregistry.Registry, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(r.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		var data []byte
		switch filepath.Ext(n) {
		case ".crt", ".pem":
			data = ca
		case ".cert":
			data = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		case ".key":
			data = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
		}
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// dockerConfig writes a Docker config file with content and returns its
// path.
func dockerConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// auths is a Docker config file's content with one "auths" entry.
func auths(host, auth string) string {
	return fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, host, auth)
}

func basic(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

func TestCredentials(t *testing.T) {
	const user, password = "alice", "s3cret-pa55w0rd"
	r := testregistry.NewWithOptions(t, testregistry.Options{TLS: true, Username: user, Password: password})
	opts := func(config string) target.RemoteOptions {
		return target.RemoteOptions{PlainHTTP: ptr(false), CAFile: r.CAFile, RegistryConfig: config}
	}
	// The credential of a token login: base64 of the token alone, without
	// the "user:" docker puts in front of a password.
	token := base64.StdEncoding.EncodeToString([]byte(password))
	malformed := dockerConfig(t, auths(r.Host, token))
	helper := dockerConfig(t, fmt.Sprintf(`{"credHelpers": {%q: "containerdisk-test-missing"}}`, r.Host))

	run(t, r, []remoteCase{
		{name: "config file", opts: opts(dockerConfig(t, auths(r.Host, basic(user, password))))},
		{
			// An entry for another host keeps the store from looking for
			// the platform's credential helper, as it does for a config
			// with no credentials at all.
			name:   "no entry for the host",
			opts:   opts(dockerConfig(t, auths("registry.example.com", basic(user, password)))),
			err:    func(err error) bool { return errors.Is(err, auth.ErrBasicCredentialNotFound) },
			errDoc: auth.ErrBasicCredentialNotFound.Error(),
		},
		{
			name:   "wrong password",
			opts:   opts(dockerConfig(t, auths(r.Host, basic(user, "wrong-"+password)))),
			err:    status(http.StatusUnauthorized),
			errDoc: "a 401",
		},
		{
			name:   "wrong user",
			opts:   opts(dockerConfig(t, auths(r.Host, basic("mallory", password)))),
			err:    status(http.StatusUnauthorized),
			errDoc: "a 401",
		},
		{
			// oras-go's own error quotes the decoded token.
			name:   "token without user",
			opts:   opts(malformed),
			err:    contains(fmt.Sprintf(`reading the credentials for %s from %s: its "auths" entry for the host is malformed`, r.Host, malformed)),
			errDoc: "an error naming the host and the file",
		},
		{
			// A unit's credentials log in to its source host whatever
			// the store holds.
			name: "credential given",
			opts: func() target.RemoteOptions {
				o := opts(dockerConfig(t, auths("registry.example.com", basic(user, "wrong-"+password))))
				o.Credential = auth.Credential{Username: user, Password: password}
				return o
			}(),
		},
		{
			name: "credential given beats the store",
			opts: func() target.RemoteOptions {
				o := opts(dockerConfig(t, auths(r.Host, basic(user, "wrong-"+password))))
				o.Credential = auth.Credential{Username: user, Password: password}
				return o
			}(),
		},
		{
			name: "wrong credential given",
			opts: func() target.RemoteOptions {
				o := opts(dockerConfig(t, auths(r.Host, basic(user, password))))
				o.Credential = auth.Credential{Username: user, Password: "wrong-" + password}
				return o
			}(),
			err:    status(http.StatusUnauthorized),
			errDoc: "a 401",
		},
		{
			// Other errors of the store keep their cause.
			name:   "missing credential helper",
			opts:   opts(helper),
			err:    contains(fmt.Sprintf(`reading the credentials for %s from %s: exec: "docker-credential-containerdisk-test-missing"`, r.Host, helper)),
			errDoc: "the helper's error",
		},
	}, password, basic(user, password), token)
}

func TestInvalidReferenceRedactsUserinfo(t *testing.T) {
	for _, in := range []string{"user:pw@host/repo", "user:pw@registry.example.com/repo:1", "https://user:pw@registry.example.com/repo"} {
		_, err := target.Parse(in)
		if err == nil {
			t.Fatalf("Parse(%q) succeeded", in)
		}
		if msg := err.Error(); strings.Contains(msg, "user:pw") || strings.Contains(msg, "pw@") || !strings.Contains(msg, "***@") {
			t.Errorf("Parse(%q): %q shows the password, or no ***@ in its place", in, msg)
		}
	}
	if got := target.Redact("oci:/x@sha256:00"); got != "oci:/x@sha256:00" {
		t.Errorf("Redact of a layout digest reference = %q", got)
	}
	_, err := target.Parse("oci:dir:\x1b[31m")
	if err == nil || strings.Contains(err.Error(), "\x1b") {
		t.Errorf("Parse of a tag with an escape: %v, want an error showing it escaped", err)
	}
}
