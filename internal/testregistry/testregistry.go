// Package testregistry runs a real OCI registry in-process for tests.
//
// The registry is github.com/distribution/distribution/v3 with its filesystem
// storage driver, served over plain HTTP on a random loopback port. Its
// handler is wrapped in a counter, so a test can assert what a client asked
// for, for example that a re-push uploaded nothing (see [Registry.Stats]).
// [Options] add HTTPS with a certificate authority of its own, and basic
// authentication through distribution's htpasswd access controller, for
// tests of how clients verify and log in.
//
// Starting a registry changes process-wide state, which suits a test binary
// but not a program: it sets OTEL_TRACES_EXPORTER=none when unset, and
// discards the output of logrus's standard logger, which distribution logs
// through (see [Start]).
package testregistry

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	// The htpasswd access controller registers itself with the registry
	// of access controllers that handlers.NewApp looks "htpasswd" up in.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	"github.com/distribution/distribution/v3/registry/handlers"
	// The filesystem driver registers itself with the driver factory that
	// handlers.NewApp looks "filesystem" up in.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/sirupsen/logrus"
)

// Registry is a running in-process registry.
type Registry struct {
	// Host is the registry's address, "127.0.0.1:PORT". It speaks plain
	// HTTP, or HTTPS with [Options].TLS.
	Host string
	// Dir is the absolute directory the registry stores blobs and manifests under.
	Dir string
	// CAFile is the PEM file, in Dir, of the certificate authority that
	// signed the registry's certificate; empty when it speaks plain HTTP.
	CAFile string

	app    *handlers.App
	server *http.Server
	served chan error
	counts counters

	mu       sync.Mutex // guards closing and inflight.Add
	closing  bool
	inflight sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Start starts a plain HTTP registry without authentication, storing under
// dir, which is created if missing. Close stops it.
//
// Start builds the registry with handlers.NewApp rather than
// registry.NewRegistry, which would listen on a configured address, log every
// request to stdout and register health checks in a process-wide registry.
// The storage health check stays off as well: registered twice, it panics.
//
// Start changes process-wide state. It sets OTEL_TRACES_EXPORTER=none unless
// already set: handlers.NewApp sets up no tracing, but anything in the test
// binary that calls distribution's tracing setup would otherwise make
// OpenTelemetry's autoexport send spans to an OTLP collector on localhost.
// It also sets logrus's standard logger, the only logger distribution offers
// (per-instance loggers live in an internal package), to level error with
// its output discarded: the registry logs an error for every 404 it answers,
// and clients provoke those by design (a blob HEAD before an upload).
func Start(dir string) (*Registry, error) {
	return StartWithOptions(dir, Options{})
}

// StartWithOptions starts a registry as Start does, configured by opts. The
// files opts call for, the CA certificate and the htpasswd file, are written
// in dir, outside the tree distribution stores under; a restart writes them
// anew, with a new certificate authority.
func StartWithOptions(dir string, opts Options) (*Registry, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("starting test registry: %w", err)
	}
	if dir == "" {
		return nil, errors.New("starting test registry: empty storage directory")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("starting test registry: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("starting test registry: %w", err)
	}
	htpasswd, caFile, cert, err := setUp(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("starting test registry: %w", err)
	}
	quiet()

	app, err := newApp(config(dir, htpasswd))
	if err != nil {
		return nil, fmt.Errorf("starting test registry in %s: %w", dir, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, errors.Join(fmt.Errorf("starting test registry: %w", err), app.Shutdown())
	}
	r := &Registry{
		Host:   ln.Addr().String(),
		Dir:    dir,
		CAFile: caFile,
		app:    app,
		served: make(chan error, 1),
	}
	r.server = &http.Server{
		Handler:  r.track(r.count(app)),
		ErrorLog: log.New(handshakeFilter{os.Stderr}, "", log.LstdFlags),
	}
	if !opts.TLS {
		go func() { r.served <- r.server.Serve(ln) }()
		return r, nil
	}
	// ServeTLS, unlike a tls.NewListener, also sets up HTTP/2, as real
	// registries have it.
	r.server.TLSConfig = &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
	go func() { r.served <- r.server.ServeTLS(ln, "", "") }()
	return r, nil
}

// New starts a plain HTTP registry without authentication for t, as
// NewWithOptions does.
func New(t testing.TB) *Registry {
	t.Helper()
	return NewWithOptions(t, Options{})
}

// NewWithOptions starts a registry configured by opts for t, storing in
// t.TempDir(), and closes it when t's test ends. It fails t if the registry
// does not start or stop cleanly.
func NewWithOptions(t testing.TB, opts Options) *Registry {
	t.Helper()
	r, err := StartWithOptions(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// Close stops the registry: it drops its connections and returns once the
// requests they carried have ended, so that nothing writes to Dir after it.
// The stored content stays in Dir. Calling Close again returns the first
// call's result.
//
// Close does not wait for clients the way http.Server.Shutdown does: a
// connection a client's transport opened but never used counts as busy there
// for five seconds, and concurrent clients such as oras.Copy leave those.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closing = true
		r.mu.Unlock()
		err := r.server.Close()
		if serr := <-r.served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		r.inflight.Wait()
		err = errors.Join(err, r.app.Shutdown())
		if err != nil {
			r.closeErr = fmt.Errorf("stopping test registry %s: %w", r.Host, err)
		}
	})
	return r.closeErr
}

// track counts the requests in flight for Close to wait for, and turns new
// ones away once Close has begun.
func (r *Registry) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		if r.closing {
			r.mu.Unlock()
			http.Error(w, "test registry closing", http.StatusServiceUnavailable)
			return
		}
		r.inflight.Add(1)
		r.mu.Unlock()
		defer r.inflight.Done()
		next.ServeHTTP(w, req)
	})
}

// newApp builds distribution's handler, turning its panics on bad
// configuration into an error.
func newApp(c *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("configuring distribution: %v", p)
		}
	}()
	return handlers.NewApp(context.Background(), c), nil
}

// config is distribution's configuration for a registry storing under dir,
// asking for the users of the htpasswd file unless it is "".
func config(dir, htpasswd string) *configuration.Configuration {
	c := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": dir},
			// Real registries mostly allow deletes; tests of clean-up need them.
			"delete": configuration.Parameters{"enabled": true},
			// The purger is a goroutine per instance that would outlive Close.
			"maintenance": configuration.Parameters{
				"uploadpurging": map[any]any{"enabled": false},
			},
		},
	}
	// Without a secret, distribution makes one up and logs a warning about it.
	c.HTTP.Secret = rand.Text()
	c.Health.StorageDriver.Enabled = false
	// As configuration.Parse defaults it: without, the catalog lists
	// nothing.
	c.Catalog.MaxEntries = 1000
	if htpasswd != "" {
		c.Auth = configuration.Auth{
			"htpasswd": configuration.Parameters{"realm": authRealm, "path": htpasswd},
		}
	}
	return c
}

// quiet sets the process-wide state Start documents.
func quiet() {
	if _, ok := os.LookupEnv("OTEL_TRACES_EXPORTER"); !ok {
		os.Setenv("OTEL_TRACES_EXPORTER", "none")
	}
	// Level error skips formatting the per-request info lines; the output
	// drops the error lines.
	logrus.SetLevel(logrus.ErrorLevel)
	logrus.SetOutput(io.Discard)
}
