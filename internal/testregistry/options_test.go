package testregistry

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// caPool reads the registry's CA file into a pool of its own.
func caPool(t *testing.T, r *Registry) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(r.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no PEM certificate", r.CAFile)
	}
	return pool
}

// httpsClient is an HTTP client that trusts roots only.
func httpsClient(roots *x509.CertPool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots}
	return &http.Client{Transport: tr}
}

// get returns the status of a GET of url by c, with basic authentication
// when user is not empty, and the answer's WWW-Authenticate header.
func get(t *testing.T, c *http.Client, url, user, password string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

func TestTLS(t *testing.T) {
	ctx := t.Context()
	r := NewWithOptions(t, Options{TLS: true})
	if want := filepath.Join(r.Dir, "ca.crt"); r.CAFile != want {
		t.Errorf("CAFile = %q, want %q", r.CAFile, want)
	}
	roots := caPool(t, r)

	// The certificate is good for both names of the loopback host, and is
	// one a client only trusts through the CA file.
	for _, name := range []string{"127.0.0.1", "localhost"} {
		conn, err := tls.Dial("tcp", r.Host, &tls.Config{RootCAs: roots, ServerName: name})
		if err != nil {
			t.Errorf("TLS with server name %s: %v", name, err)
			continue
		}
		conn.Close()
	}
	_, err := http.Get("https://" + r.Host + "/v2/")
	if ua := (x509.UnknownAuthorityError{}); !errors.As(err, &ua) {
		t.Errorf("GET without the CA: %v, want an unknown authority error", err)
	}
	// Plain HTTP reaches no handler either: Go's TLS server answers it 400.
	if status, _ := get(t, http.DefaultClient, "http://"+r.Host+"/v2/", "", ""); status != http.StatusBadRequest {
		t.Errorf("plain HTTP GET: status %d, want 400", status)
	}
	checkStats(t, r, Stats{})

	// A client trusting the CA pushes and reads back, counted as over HTTP.
	repo, err := remote.NewRepository(r.Host + "/demo")
	if err != nil {
		t.Fatal(err)
	}
	repo.Client = httpsClient(roots)
	a := newArtifact(t, []byte("over TLS"))
	if _, err := oras.Copy(ctx, a.store, "v1", repo, "v1", oras.DefaultCopyOptions); err != nil {
		t.Fatal(err)
	}
	desc, err := repo.Resolve(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != a.root.Digest {
		t.Errorf("v1 resolves to %s, want %s", desc.Digest, a.root.Digest)
	}
	checkStats(t, r, Stats{
		ManifestHead: 2,
		BlobHead:     2,
		BlobPost:     2,
		BlobPut:      2,
		BlobBytesIn:  int64(len(a.layer)) + a.config.Size,
		ManifestPut:  1,
	})
}

func TestAuth(t *testing.T) {
	const user, password = "alice", "s3cret-pa55"
	tests := []struct {
		name string
		opts Options
	}{
		{"plain HTTP", Options{Username: user, Password: password}},
		{"TLS", Options{TLS: true, Username: user, Password: password}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewWithOptions(t, tt.opts)
			url, client := "http://"+r.Host+"/v2/", http.DefaultClient
			if tt.opts.TLS {
				url, client = "https://"+r.Host+"/v2/", httpsClient(caPool(t, r))
			}

			// Without credentials or with a wrong one the registry
			// challenges the client for basic authentication.
			for _, try := range []struct{ user, password string }{
				{"", ""},
				{user, "wrong"},
				{"mallory", password},
			} {
				status, challenge := get(t, client, url, try.user, try.password)
				if status != http.StatusUnauthorized || challenge != `Basic realm="testregistry"` {
					t.Errorf("GET as %q/%q: %d %q, want 401 with a basic challenge", try.user, try.password, status, challenge)
				}
			}
			if status, _ := get(t, client, url, user, password); status != http.StatusOK {
				t.Errorf("GET with the credentials: status %d, want 200", status)
			}
			hash, err := os.ReadFile(filepath.Join(r.Dir, "htpasswd"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(hash), user+":$2") || strings.Contains(string(hash), password) {
				t.Errorf("htpasswd file %q, want a bcrypt entry for %s", hash, user)
			}

			// oras-go answers the challenge with the credential it has:
			// none is an error of its own, before the registry sees a
			// password; a wrong one is the registry's 401.
			repo, err := remote.NewRepository(r.Host + "/demo")
			if err != nil {
				t.Fatal(err)
			}
			repo.PlainHTTP = !tt.opts.TLS
			login := func(password string) {
				repo.Client = &auth.Client{Client: client}
				if password != "" {
					repo.Client = &auth.Client{
						Client:     client,
						Credential: auth.StaticCredential(r.Host, auth.Credential{Username: user, Password: password}),
					}
				}
			}
			a := newArtifact(t, []byte("behind a login"))
			login("")
			_, err = oras.Copy(t.Context(), a.store, "v1", repo, "v1", oras.DefaultCopyOptions)
			if !errors.Is(err, auth.ErrBasicCredentialNotFound) {
				t.Errorf("push without credentials: %v, want %v", err, auth.ErrBasicCredentialNotFound)
			}
			login("wrong")
			_, err = oras.Copy(t.Context(), a.store, "v1", repo, "v1", oras.DefaultCopyOptions)
			var resp *errcode.ErrorResponse
			if !errors.As(err, &resp) || resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("push with a wrong password: %v, want a 401", err)
			}
			login(password)
			if _, err := oras.Copy(t.Context(), a.store, "v1", repo, "v1", oras.DefaultCopyOptions); err != nil {
				t.Errorf("push with credentials: %v", err)
			}
		})
	}
}

func TestStartWithBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"user without password", Options{Username: "alice"}, "a username needs a password"},
		{"password without user", Options{Password: "secret"}, "a username needs a password"},
		{"colon in user", Options{Username: "a:b", Password: "secret"}, `username "a:b" has a colon`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r, err := StartWithOptions(dir, tt.opts)
			if err == nil {
				r.Close()
				t.Fatalf("StartWithOptions(%+v) succeeded, want an error", tt.opts)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to say %q", err, tt.want)
			}
			if tt.opts.Password != "" && strings.Contains(err.Error(), tt.opts.Password) {
				t.Errorf("error %q shows the password", err)
			}
			if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
				t.Errorf("the refused start left %v in its directory (%v)", entries, err)
			}
		})
	}
}

// TestRestartTLS shows that a restart makes a new CA: a client must read
// CAFile again.
func TestRestartTLS(t *testing.T) {
	dir := t.TempDir()
	r, err := StartWithOptions(dir, Options{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(r.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r, err = StartWithOptions(dir, Options{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	second, err := os.ReadFile(r.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(first) == string(second) {
		t.Errorf("the restarted registry kept its CA certificate")
	}
	if status, _ := get(t, httpsClient(caPool(t, r)), "https://"+r.Host+"/v2/", "", ""); status != http.StatusOK {
		t.Errorf("GET /v2/ after restart: status %d, want 200", status)
	}
}
