package target

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"oras.land/oras-go/v2/registry/remote/retry"
)

// TestRetryPolicy is the decision table of a registry request's retries:
// what each answer or failure, at each attempt, makes retry.Transport do.
func TestRetryPolicy(t *testing.T) {
	answer := func(code int, retryAfter string) *http.Response {
		resp := &http.Response{StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code)), Header: http.Header{}, Body: io.NopCloser(strings.NewReader("busy"))}
		if retryAfter != "" {
			resp.Header.Set("Retry-After", retryAfter)
		}
		return resp
	}
	stall := &StallError{Host: "registry.example", Limit: time.Second, Phase: PhaseWaiting}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	const url = "GET https://registry.example/v2/containerdisks/fedora/manifests/42: "
	tests := []struct {
		name    string
		attempt int
		resp    *http.Response
		err     error
		// policy settings, when not the default ones
		retries  int
		stalls   int
		streamed bool
		ctx      context.Context
		atLeast  time.Duration // the wait, or -1 for no retry
		atMost   time.Duration
		log      string // the line logged, if any
	}{
		{name: "429 with Retry-After", resp: answer(429, "1"), atLeast: time.Second, atMost: time.Second, log: url + "429 Too Many Requests with Retry-After; retrying in 1s (retry 1 of 5)"},
		{name: "503 with Retry-After 0", attempt: 3, resp: answer(503, "0"), log: url + "503 Service Unavailable with Retry-After; retrying in 0s (retry 4 of 5)"},
		{name: "503 with a Retry-After date past", resp: answer(503, "Mon, 02 Jan 2006 15:04:05 GMT"), log: url + "503 Service Unavailable with Retry-After; retrying in 0s (retry 1 of 5)"},
		{name: "503 with a malformed Retry-After", resp: answer(503, "soon"), atLeast: 125 * time.Millisecond, atMost: 250 * time.Millisecond, log: url + "503 Service Unavailable; retrying in"},
		{name: "502, first retry", resp: answer(502, ""), atLeast: 125 * time.Millisecond, atMost: 250 * time.Millisecond, log: url + "502 Bad Gateway; retrying in"},
		{name: "504, third retry", attempt: 2, resp: answer(504, ""), atLeast: 500 * time.Millisecond, atMost: time.Second, log: "(retry 3 of 5)"},
		{name: "backoff capped at 10s", attempt: 12, retries: 20, resp: answer(503, ""), atLeast: 5 * time.Second, atMost: 10 * time.Second, log: "(retry 13 of 20)"},
		{name: "Retry-After beyond the cap", resp: answer(429, "3600"), atLeast: -1, log: url + "429 Too Many Requests, and the registry asks to wait 1h0m0s, longer than the 1m0s a retry waits at most; not retrying"},
		{name: "retries run out", attempt: 5, resp: answer(503, "0"), atLeast: -1},
		{name: "retries off", retries: -1, resp: answer(503, "0"), atLeast: -1},
		{name: "200", resp: answer(200, ""), atLeast: -1},
		{name: "500", resp: answer(500, ""), atLeast: -1},
		{name: "404", resp: answer(404, "1"), atLeast: -1},
		{name: "body cannot be sent again", streamed: true, resp: answer(503, "0"), atLeast: -1},
		{name: "caller gone", ctx: canceled, resp: answer(503, "0"), atLeast: -1},
		{name: "connection reset", err: &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, atLeast: 125 * time.Millisecond, atMost: 250 * time.Millisecond, log: url + "read tcp: connection reset by peer; retrying in"},
		{name: "EOF", attempt: 1, err: io.ErrUnexpectedEOF, atLeast: 250 * time.Millisecond, atMost: 500 * time.Millisecond, log: url + "unexpected EOF; retrying in"},
		{name: "timeout", err: &net.DNSError{Err: "i/o timeout", IsTimeout: true}, atLeast: 125 * time.Millisecond, atMost: 250 * time.Millisecond, log: "i/o timeout; retrying in"},
		{name: "context canceled", err: fmt.Errorf("sending: %w", context.Canceled), atLeast: -1},
		{name: "other failure", err: errors.New("tls: failed to verify certificate"), atLeast: -1},
		{name: "first stall, its last retry", err: stall, atLeast: 125 * time.Millisecond, atMost: 250 * time.Millisecond, log: "(stalled); --stall-timeout sets this limit; retrying in"},
		{name: "first stall after a 503", attempt: 1, err: stall, atLeast: 250 * time.Millisecond, atMost: 500 * time.Millisecond, log: "(retry 2 of 2)"},
		{name: "second stall", attempt: 1, stalls: 1, err: stall, atLeast: -1},
		{name: "503 after a stall", attempt: 1, stalls: 1, resp: answer(503, "0"), log: "(retry 2 of 5)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			var body io.Reader
			if tt.streamed {
				body = io.MultiReader(strings.NewReader("chunk"))
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://registry.example/v2/containerdisks/fedora/manifests/42?state=secret", body)
			if err != nil {
				t.Fatal(err)
			}
			var logs []string
			rt := newRetryTransport(http.DefaultTransport, RemoteOptions{Retries: tt.retries, Log: func(format string, args ...any) {
				logs = append(logs, fmt.Sprintf(format, args...))
			}})
			p := rt.newPolicy(req)
			p.stalls = tt.stalls
			var policy retry.Policy = p
			wait, err := policy.Retry(tt.attempt, tt.resp, tt.err)
			if err != nil {
				t.Errorf("Retry: %v, want no error: retry.Transport would drop the answer", err)
			}
			if wait < tt.atLeast || wait > max(tt.atLeast, tt.atMost) {
				t.Errorf("wait %v, want %v to %v", wait, tt.atLeast, max(tt.atLeast, tt.atMost))
			}
			switch {
			case tt.log == "" && len(logs) > 0:
				t.Errorf("logged %q, want nothing", logs)
			case tt.log != "" && (len(logs) != 1 || !strings.Contains(logs[0], tt.log)):
				t.Errorf("logged %q, want one line with %q", logs, tt.log)
			}
			if tt.resp != nil && wait >= 0 {
				// Read up to its end, so that the connection is reused
				// when retry.Transport closes it.
				if n, _ := tt.resp.Body.Read(make([]byte, 1)); n != 0 {
					t.Error("the answer of a retried request was not drained")
				}
			}
		})
	}
}

// TestRetryTransport sends requests through oras-go's retry.Transport
// driven by the registry requests' policy, to a server answering 429 with
// Retry-After, 429 without, 503 with a past date, then 200.
func TestRetryTransport(t *testing.T) {
	answers := []func(http.ResponseWriter){
		func(w http.ResponseWriter) { w.Header().Set("Retry-After", "1"); w.WriteHeader(429) },
		func(w http.ResponseWriter) { w.WriteHeader(429) },
		func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat))
			w.WriteHeader(503)
		},
		func(w http.ResponseWriter) { w.WriteHeader(200) },
	}
	var attempts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := attempts.Add(1)
		answers[min(int(n), len(answers))-1](w)
	}))
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	rt := newRetryTransport(srv.Client().Transport, RemoteOptions{Log: func(format string, args ...any) {
		logs = append(logs, fmt.Sprintf(format, args...))
	}})
	transport := &retry.Transport{Base: rt.base, Policy: func() retry.Policy { return rt.newPolicy(req) }}
	start := time.Now()
	resp, err := transport.RoundTrip(req)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || attempts.Load() != 4 {
		t.Errorf("%s after %d attempts, want 200 after 4", resp.Status, attempts.Load())
	}
	// Retry-After's second, and a backoff of at most 500 ms.
	if took < time.Second || took > 2*time.Second {
		t.Errorf("took %v, want 1s to 2s", took)
	}
	want := []string{
		"429 Too Many Requests with Retry-After; retrying in 1s (retry 1 of 5)",
		"429 Too Many Requests; retrying in",
		"503 Service Unavailable with Retry-After; retrying in 0s (retry 3 of 5)",
	}
	if len(logs) != len(want) {
		t.Fatalf("logged %q, want %d lines", logs, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(logs[i], "GET "+srv.URL+"/v2/: "+w) {
			t.Errorf("line %d: %q, want %q", i+1, logs[i], w)
		}
	}
}

// TestRetryReusesConnection retries a PUT answered 503 with a body twice:
// every attempt goes over the one connection, since the answers are
// drained, with the whole body, and the caller's request is left as it was.
func TestRetryReusesConnection(t *testing.T) {
	var attempts, conns atomic.Int32
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		if attempts.Add(1) <= 2 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(503)
			fmt.Fprint(w, strings.Repeat("busy ", 100))
			return
		}
		w.WriteHeader(201)
	}))
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	body := bytes.NewReader([]byte("containerdisk"))
	req, err := http.NewRequest(http.MethodPut, srv.URL+"/v2/containerdisks/fedora/blobs/uploads/1?digest=x", body)
	if err != nil {
		t.Fatal(err)
	}
	orig := req.Body
	resp, err := RetryTransport(nil, RemoteOptions{MaxConcurrency: 1}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Errorf("%s, want 201 Created", resp.Status)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(bodies, " "); got != "containerdisk containerdisk containerdisk" {
		t.Errorf("the server received %q, the body three times", got)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 attempts, want 1", n)
	}
	if req.Body != orig {
		t.Error("the caller's request has another body")
	}
}

// TestRetryBodyKinds retries a request answered 503 once: a request whose
// body is http.NoBody is sent again without a GetBody, and one whose body
// fails to rewind ends with that failure.
func TestRetryBodyKinds(t *testing.T) {
	rewind := errors.New("the file is gone")
	tests := []struct {
		name     string
		body     io.ReadCloser
		getBody  func() (io.ReadCloser, error)
		attempts int32
		err      string
	}{
		{name: "no body", body: http.NoBody, attempts: 2},
		{name: "rewind fails", body: io.NopCloser(strings.NewReader("x")), getBody: func() (io.ReadCloser, error) { return nil, rewind }, attempts: 1, err: "rewinding the body of PUT "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var attempts atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if attempts.Add(1) == 1 {
					w.Header().Set("Retry-After", "0")
					w.WriteHeader(503)
					return
				}
				w.WriteHeader(201)
			}))
			defer srv.Close()
			req, err := http.NewRequest(http.MethodPut, srv.URL+"/v2/x", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Body, req.GetBody = tt.body, tt.getBody
			resp, err := RetryTransport(nil, RemoteOptions{}).RoundTrip(req)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			} else if !errors.Is(err, rewind) || !strings.HasPrefix(err.Error(), tt.err+srv.URL+"/v2/x: ") {
				t.Errorf("got %v, want %q and the rewind's error", err, tt.err)
			}
			if n := attempts.Load(); n != tt.attempts {
				t.Errorf("%d attempts, want %d", n, tt.attempts)
			}
		})
	}
}
