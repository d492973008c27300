package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"
)

// DefaultStallTimeout is how long a registry may leave a request without
// progress when RemoteOptions.StallTimeout is zero: long enough for a
// registry to commit a multi-GB blob before it answers the last PUT, short
// enough that a scheduled mirror gets past a registry that went silent.
const DefaultStallTimeout = time.Minute

// maxStallRetries is how many times a request that stalled is sent again.
// A stall has already cost the whole limit, so a dead registry is given up
// on after two limits rather than after every retry of RemoteOptions.Retries.
const maxStallRetries = 1

// stallBytes is the progress that restarts the stall clock: a registry
// that sends (or takes) less than this within the stall limit is stalled,
// so that one dripping a byte a second is caught as surely as a silent one.
// With the default limit, that is a floor of about 270 bytes a second.
const stallBytes = 16 << 10

// Phases of a request, for StallError.
const (
	// PhaseConnecting is the connection and its TLS handshake.
	PhaseConnecting = "connecting"
	// PhaseSending is the upload of the request and its body.
	PhaseSending = "sending"
	// PhaseWaiting is the wait for the answer's headers.
	PhaseWaiting = "waiting"
	// PhaseReceiving is the download of the answer's body.
	PhaseReceiving = "receiving"
)

// StallError reports a registry that made too little progress on a request
// within the stall limit: it did not complete the connection or the TLS
// handshake, took less than 16 KiB of the request's body, did not start its
// answer, or sent less than 16 KiB of the answer's body. A slow transfer
// that keeps moving is no stall, however long it takes.
type StallError struct {
	// Host is the registry's host[:port].
	Host string
	// Limit is the stall limit.
	Limit time.Duration
	// Phase is PhaseConnecting, PhaseSending, PhaseWaiting or
	// PhaseReceiving.
	Phase string
	// Bytes is what moved, in Phase, since the clock last started.
	Bytes int64
}

func (e *StallError) Error() string {
	var what string
	switch {
	case e.Phase == PhaseConnecting:
		what = fmt.Sprintf("did not complete the connection (TCP and TLS handshakes) in %v", e.Limit)
	case e.Phase == PhaseSending:
		what = fmt.Sprintf("took only %d bytes of the upload in %v", e.Bytes, e.Limit)
	case e.Phase == PhaseReceiving && e.Bytes > 0:
		what = fmt.Sprintf("sent only %d bytes in %v", e.Bytes, e.Limit)
	case e.Phase == PhaseReceiving:
		what = fmt.Sprintf("sent nothing for %v", e.Limit)
	default:
		what = fmt.Sprintf("sent no answer for %v", e.Limit)
	}
	return fmt.Sprintf("registry %s %s (stalled); --stall-timeout sets this limit", e.Host, what)
}

// Timeout reports true: a stall is a timeout, as net.Error has it.
func (e *StallError) Timeout() bool { return true }

// Temporary reports true, for net.Error: the registry may answer later.
func (e *StallError) Temporary() bool { return true }

// stallLimit is the stall limit of opts; 0 for none.
func stallLimit(opts RemoteOptions) time.Duration {
	switch {
	case opts.StallTimeout == 0:
		return DefaultStallTimeout
	case opts.StallTimeout < 0:
		return 0
	}
	return opts.StallTimeout
}

// newBaseTransport is the HTTP transport of registry requests: the default
// one, with its connect and TLS handshake limits set to the stall limit.
func newBaseTransport(opts RemoteOptions) *http.Transport {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if limit := stallLimit(opts); limit > 0 {
		dialer := &net.Dialer{Timeout: limit, KeepAlive: 30 * time.Second}
		transport.DialContext = dialer.DialContext
		transport.TLSHandshakeTimeout = limit
	} else {
		transport.DialContext = (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext
		transport.TLSHandshakeTimeout = 0
	}
	return transport
}

// stallTransport fails a request on which the registry makes too little
// progress (stallBytes) within limit. The clock runs from the start of the
// round trip (connecting, the TLS handshake, the request and its body,
// which the transport reads as fast as the registry takes it) until the
// answer's headers, and during each read of the answer's body; each
// stallBytes moved, and the end of the request's body, start it again.
// Time the caller spends between reads of the answer does not count, so a
// copy streaming one registry's blob into another is held up by neither.
// There is no limit on a request's total time: a multi-GB blob moving
// slowly is no stall.
type stallTransport struct {
	base  http.RoundTripper
	limit time.Duration
}

func (t *stallTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.limit <= 0 {
		return t.base.RoundTrip(req)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	w := &watchdog{host: req.URL.Host, limit: t.limit, remaining: t.limit, phase: PhaseWaiting, cancel: cancel}
	// The end of the request's body is not the end of its upload: the
	// connection's buffers may hold megabytes still on their way. Their
	// draining is progress too, where the system tells it.
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: w.gotConn})
	r := req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		w.phase = PhaseSending
		r.Body = &sendBody{ReadCloser: req.Body, w: w}
		if req.GetBody != nil {
			r.GetBody = func() (io.ReadCloser, error) {
				b, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				return &sendBody{ReadCloser: b, w: w}, nil
			}
		}
	}
	w.run()
	resp, err := t.base.RoundTrip(r)
	w.pause()
	if err != nil {
		cancel(nil)
		if req.Context().Err() == nil && (w.stalled() != nil || isTimeout(err)) {
			return nil, w.stallError()
		}
		return nil, err
	}
	w.next(PhaseReceiving)
	resp.Body = &receiveBody{ReadCloser: resp.Body, w: w}
	return resp, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// watchdog cancels a request when its clock, restarted on progress, runs
// out. The clock can be paused, keeping the time left.
type watchdog struct {
	host   string
	limit  time.Duration
	cancel context.CancelCauseFunc

	mu        sync.Mutex
	phase     string
	remaining time.Duration // left on the clock
	bytes     int64         // moved since the clock last started
	since     time.Time     // when the clock last ran on; zero when paused
	timer     *time.Timer
	err       *StallError // set when the clock ran out
	conn      net.Conn    // the request's connection, once known
	queued    int         // its send queue when the clock last started
}

func (w *watchdog) gotConn(info httptrace.GotConnInfo) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.conn = info.Conn
}

// run starts the clock with the time left.
func (w *watchdog) run() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil || !w.since.IsZero() {
		return
	}
	w.since = time.Now()
	if w.timer == nil {
		w.timer = time.AfterFunc(w.remaining, w.fire)
	} else {
		w.timer.Reset(w.remaining)
	}
}

// pause stops the clock, keeping the time left.
func (w *watchdog) pause() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.since.IsZero() {
		return
	}
	w.timer.Stop()
	w.remaining = max(w.remaining-time.Since(w.since), 0)
	w.since = time.Time{}
}

// progress counts n bytes moved, restarting the clock every stallBytes.
func (w *watchdog) progress(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bytes += int64(n)
	if w.bytes >= stallBytes {
		w.restart()
	}
}

// next starts phase with a full clock.
func (w *watchdog) next(phase string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.phase = phase
	w.restart()
}

func (w *watchdog) restart() {
	w.bytes, w.remaining = 0, w.limit
	if w.phase == PhaseWaiting && w.conn != nil {
		w.queued, _ = sendQueue(w.conn)
	}
	if !w.since.IsZero() && w.err == nil {
		w.since = time.Now()
		w.timer.Reset(w.limit)
	}
}

func (w *watchdog) fire() {
	w.mu.Lock()
	if w.phase == PhaseWaiting && w.conn != nil && w.err == nil {
		// The upload's end, still in the connection's buffers, moving.
		if q, ok := sendQueue(w.conn); ok && w.queued-q >= stallBytes {
			w.restart()
			w.mu.Unlock()
			return
		}
	}
	if w.err == nil {
		w.err = w.newError()
	}
	err := w.err
	w.mu.Unlock()
	w.cancel(err)
}

// stalled is the stall, or nil when the clock has not run out.
func (w *watchdog) stalled() *StallError {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// stallError is the stall, or one for a timeout of the transport's own
// (connecting or the TLS handshake) just before the clock ran out.
func (w *watchdog) stallError() *StallError {
	if err := w.stalled(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.newError()
}

func (w *watchdog) newError() *StallError {
	phase := w.phase
	if w.conn == nil {
		phase = PhaseConnecting
	}
	return &StallError{Host: w.host, Limit: w.limit, Phase: phase, Bytes: w.bytes}
}

// sendBody counts the progress of a request's body.
type sendBody struct {
	io.ReadCloser
	w *watchdog
}

func (b *sendBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.w.progress(n)
	if err == io.EOF {
		b.w.next(PhaseWaiting)
	}
	return n, err
}

// receiveBody runs the clock during each read of an answer's body.
type receiveBody struct {
	io.ReadCloser
	w *watchdog
}

func (b *receiveBody) Read(p []byte) (int, error) {
	b.w.run()
	n, err := b.ReadCloser.Read(p)
	b.w.progress(n)
	b.w.pause()
	if err != nil && err != io.EOF {
		if stall := b.w.stalled(); stall != nil {
			return n, stall
		}
	}
	return n, err
}

func (b *receiveBody) Close() error {
	b.w.pause()
	err := b.ReadCloser.Close()
	b.w.cancel(nil)
	return err
}
