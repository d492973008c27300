// Package upload sends blobs to a registry with the upload protocol of the
// distribution spec, resuming an upload cut midway from what the registry
// holds, and reads blobs checked against their digest as they stream.
package upload

import (
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/containerdisk/kubectl-containerdisk/pkg/internal/backoff"
)

// DefaultChunkSize is the size of the chunks of Uploader.ChunkSize when
// it is zero.
const DefaultChunkSize = 16 << 20

// Limits of the retries of the upload and of the source stream: how many
// failures in a row, without a byte of progress, are given up on.
const (
	maxUploadFailures = 5
	maxSourceFailures = 3
)

// pause is the wait before the nth retry in a row: from 250 ms, doubled up
// to 5 s.
var pause = backoff.Policy{Initial: 250 * time.Millisecond, Max: 5 * time.Second}

// Opener opens the content of a blob at offset.
type Opener func(ctx context.Context, offset int64) (io.ReadCloser, error)

// Uploader sends blobs to a registry repository with the upload protocol
// of the distribution spec: POST to open an upload (or to mount), then
// either one PUT with the whole blob, as most clients send them (some
// registries take no chunks), or, from LargeBlob on, PATCHes of chunk
// bytes and a closing PUT. When a request fails midway, it asks the
// registry how much of the upload it holds (GET of the upload URL, whose
// Range header says) and goes on from there, instead of starting again;
// the source is read again from there too, with a range request when it
// takes them.
//
// It goes through the repository's client, so the registry's tokens and
// retries (see target.RemoteOptions) apply. Only the PATCH and PUT that
// carry data are not retried by the client, their bodies being streams:
// the Uploader resumes them.
type Uploader struct {
	// Repo is the repository the blobs go to.
	Repo *remote.Repository
	// LargeBlob is the size from which a blob goes in chunks; when zero,
	// every blob goes in one PUT. ChunkSize is their size
	// (DefaultChunkSize when zero), raised to the registry's
	// OCI-Chunk-Min-Length. A PUT cut midway is resumed in chunks from
	// what the registry holds.
	LargeBlob, ChunkSize int64
	// OnResume, when set, is told where an interrupted upload goes on.
	OnResume func(desc ocispec.Descriptor, offset int64)
}

// Upload copies the blob desc, read with open, to the repository, or mounts
// it from the first repository of mountFrom (of the same registry) that
// has it. It reports whether the blob was mounted. The content is checked
// against desc's digest as it streams; on a mismatch the upload is
// cancelled before the registry could commit it.
//
// While another Upload of the process sends the same blob to the same
// registry, this one waits for it and then mounts the blob from there (or,
// in the same repository, finds it in place and reports it mounted), so
// that concurrent copies sharing a layer send it once.
func (u *Uploader) Upload(ctx context.Context, desc ocispec.Descriptor, mountFrom []string, open Opener) (mounted bool, err error) {
	ctx = auth.AppendRepositoryScope(ctx, u.Repo.Reference, auth.ActionPull, auth.ActionPush)
	f, mountFrom, found, err := u.lead(ctx, desc, mountFrom)
	if f == nil {
		return found, err
	}
	defer func() { f.finish(err) }()
	b, err := newBlobReader(ctx, desc, open)
	if err != nil {
		return false, err
	}
	defer b.Close()
	s, err := u.start(ctx, desc, mountFrom)
	if err != nil || s.mounted {
		return s.mounted, err
	}
	large := u.LargeBlob > 0 && desc.Size >= u.LargeBlob
	t := &blobUpload{u: u, desc: desc, b: b, loc: s.loc, large: large, whole: !large,
		chunk: max(orDefault(u.ChunkSize, DefaultChunkSize), s.minChunk)}
	return false, t.run(ctx)
}

// lead waits until no other Upload of the process sends desc to the
// registry, and then leads its upload: it returns the flight, which the
// caller must finish, and mountFrom with the repository the last upload
// went to first. When that upload went to this repository and the blob is
// there, or ctx ends, it returns no flight but the result of Upload.
func (u *Uploader) lead(ctx context.Context, desc ocispec.Descriptor, mountFrom []string) (*flight, []string, bool, error) {
	repository := u.Repo.Reference.Repository
	for {
		f, lead := joinFlight(u.Repo.Reference.Host(), desc, repository)
		if lead {
			return f, mountFrom, false, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, false, ctx.Err()
		case <-f.done:
		}
		if f.err != nil {
			continue // it failed: try, and lead, anew
		}
		if f.repository == repository {
			if ok, err := u.Repo.Blobs().Exists(ctx, desc); err == nil && ok {
				return nil, nil, true, nil
			}
			continue
		}
		if !slices.Contains(mountFrom, f.repository) {
			mountFrom = append([]string{f.repository}, mountFrom...)
		}
	}
}

// blobUpload is the state of one upload the registry opened, kept across
// the requests that resume it.
type blobUpload struct {
	u     *Uploader
	desc  ocispec.Descriptor
	b     *blobReader
	loc   *url.URL
	chunk int64
	// large says the blob goes in chunks; whole, that the next request
	// sends it all in one PUT.
	large, whole bool
	// off is how many bytes the registry holds.
	off int64
	// failures counts the failures since the registry last held more
	// than best.
	failures int
	best     int64
}

// run sends the blob, resuming from what the registry holds after each
// failure worth it.
func (t *blobUpload) run(ctx context.Context) error {
	for {
		done, err := t.send(ctx)
		if done {
			return nil
		}
		if err == nil {
			continue
		}
		if t.b.err != nil || ctx.Err() != nil || !resumable(err) {
			return t.fail(ctx, err)
		}
		if done, err := t.resync(ctx, err); done || err != nil {
			return err
		}
		// What the registry holds is gone on with in chunks; from
		// nothing, the blob goes as at first, for the registries that
		// take no chunks (such as Google's Artifact Registry).
		t.whole = !t.large && t.off == 0
		if t.off > t.best {
			t.failures, t.best = 0, t.off
		}
		if err := t.b.rewind(t.off); err != nil {
			return t.fail(ctx, err)
		}
		if t.u.OnResume != nil {
			t.u.OnResume(t.desc, t.off)
		}
	}
}

// send makes the next request: the whole blob, a chunk, or the closing
// PUT. It reports whether the upload is done.
func (t *blobUpload) send(ctx context.Context) (bool, error) {
	switch {
	case t.whole:
		err := t.u.put(ctx, t.loc, t.desc, t.b, t.desc.Size)
		return err == nil, err
	case t.off < t.desc.Size:
		t.b.mark()
		n := min(t.chunk, t.desc.Size-t.off)
		next, err := t.u.patch(ctx, t.loc, t.b, t.off, n)
		if err == nil {
			t.loc, t.off = next, t.off+n
		}
		return false, err
	default:
		// Every byte is there and was checked as it was read.
		err := t.u.put(ctx, t.loc, t.desc, nil, 0)
		return err == nil, err
	}
}

// resync, after the failed request err, asks the registry how much of the
// upload it holds and moves loc and off there, or opens a new upload when
// it forgot this one. It reports whether the blob is in place after all;
// an error ends the upload.
func (t *blobUpload) resync(ctx context.Context, err error) (bool, error) {
	for {
		if t.failures++; t.failures > maxUploadFailures {
			return false, t.fail(ctx, fmt.Errorf("giving up after %d failures in a row at byte %d: %w", t.failures-1, t.off, err))
		}
		if perr := backoff.Sleep(ctx, pause.Delay(t.failures)); perr != nil {
			return false, t.fail(ctx, perr)
		}
		next, have, serr := t.u.status(ctx, t.loc)
		if serr == nil && have >= 0 {
			t.loc, t.off = next, have
			return false, nil
		}
		if serr != nil && !errors.Is(serr, errdef.ErrNotFound) {
			if err = serr; !resumable(serr) {
				return false, t.fail(ctx, serr)
			}
			continue
		}
		// The registry forgot the upload, perhaps because a PUT that
		// failed on the way back did commit it, or cannot say how
		// much it holds: either the blob is there or it starts over.
		if ok, err := t.u.Repo.Blobs().Exists(ctx, t.desc); err == nil && ok {
			return true, nil
		}
		if serr == nil {
			t.u.cancel(ctx, t.loc)
		}
		s, serr := t.u.start(ctx, t.desc, nil)
		if serr != nil {
			if err = serr; !resumable(serr) {
				return false, serr
			}
			continue
		}
		t.loc, t.off = s.loc, 0
		return false, nil
	}
}

// fail cancels the upload, so that the registry drops what it holds, and
// returns the source's error when it was the source that failed.
func (t *blobUpload) fail(ctx context.Context, err error) error {
	t.u.cancel(ctx, t.loc)
	if t.b.err != nil {
		return t.b.err
	}
	return fmt.Errorf("uploading blob %s: %w", t.desc.Digest, err)
}

// permanentError marks a failure that resuming cannot mend.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// resumable reports whether a failed upload request is worth resuming:
// the connection failed, or the registry answered with a status that may
// pass (busy, or a range to resynchronise). Others, such as a refused
// digest or access, stay.
func resumable(err error) bool {
	var perm permanentError
	if errors.As(err, &perm) {
		return false
	}
	var resp *errcode.ErrorResponse
	if !errors.As(err, &resp) {
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	switch resp.StatusCode {
	case http.StatusRequestedRangeNotSatisfiable, http.StatusNotFound, http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// session is an upload the registry opened.
type session struct {
	loc     *url.URL
	mounted bool
	// minChunk is the registry's OCI-Chunk-Min-Length, the smallest PATCH
	// it takes but the last.
	minChunk int64
}

// start opens an upload, trying to mount the blob from each of mountFrom
// first. A registry answers a mount it cannot do by opening an upload: the
// last one is used, the others are cancelled.
func (u *Uploader) start(ctx context.Context, desc ocispec.Descriptor, mountFrom []string) (session, error) {
	base := repositoryURL(u.Repo, u.Repo.Reference.Repository) + "/blobs/uploads/"
	var from []string
	for _, f := range mountFrom {
		if f != "" && f != u.Repo.Reference.Repository {
			from = append(from, f)
		}
	}
	for i := 0; i == 0 || i < len(from); i++ {
		target, rctx := base, ctx
		if len(from) > 0 {
			target += "?" + url.Values{"mount": {desc.Digest.String()}, "from": {from[i]}}.Encode()
			ref := u.Repo.Reference
			ref.Repository = from[i]
			rctx = auth.AppendRepositoryScope(ctx, ref, auth.ActionPull)
		}
		resp, err := u.do(rctx, http.MethodPost, target, nil)
		if err != nil {
			return session{}, fmt.Errorf("starting the upload of blob %s: %w", desc.Digest, err)
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusCreated:
			return session{mounted: true}, nil
		case http.StatusAccepted:
		default:
			return session{}, fmt.Errorf("starting the upload of blob %s: %w", desc.Digest, responseError(resp))
		}
		loc, err := location(resp)
		if err != nil {
			return session{}, fmt.Errorf("starting the upload of blob %s: %w", desc.Digest, err)
		}
		if i < len(from)-1 {
			u.cancel(ctx, loc)
			continue
		}
		s := session{loc: loc}
		if v, err := strconv.ParseInt(resp.Header.Get("OCI-Chunk-Min-Length"), 10, 64); err == nil && v > 0 {
			s.minChunk = v
		}
		return s, nil
	}
	return session{}, fmt.Errorf("starting the upload of blob %s: no attempt made", desc.Digest)
}

// patch sends n bytes of b, which stands at off, and returns the upload's
// next URL.
func (u *Uploader) patch(ctx context.Context, loc *url.URL, b *blobReader, off, n int64) (*url.URL, error) {
	body := &chunkBody{r: io.LimitReader(b, n)}
	resp, err := u.do(ctx, http.MethodPatch, loc.String(), body, func(req *http.Request) {
		req.ContentLength = n
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", off, off+n-1))
	})
	body.Close()
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return nil, responseError(resp)
	}
	if end, ok := rangeEnd(resp.Header.Get("Range")); ok && end != off+n {
		return nil, fmt.Errorf("PATCH of bytes %d-%d: the registry holds %d bytes", off, off+n-1, end)
	}
	return location(resp)
}

// put closes the upload at loc, sending the n bytes of b first (the whole
// blob), or nothing when b is nil.
func (u *Uploader) put(ctx context.Context, loc *url.URL, desc ocispec.Descriptor, b *blobReader, n int64) error {
	if n == 0 {
		b = nil
	}
	target := *loc
	q := target.Query()
	q.Set("digest", desc.Digest.String())
	target.RawQuery = q.Encode()
	var body *chunkBody
	var r io.Reader = http.NoBody
	if b != nil {
		body = &chunkBody{r: io.LimitReader(b, n)}
		r = body
	}
	resp, err := u.do(ctx, http.MethodPut, target.String(), r, func(req *http.Request) {
		req.ContentLength = n
		req.Header.Set("Content-Type", "application/octet-stream")
	})
	if body != nil {
		body.Close()
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return responseError(resp)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != desc.Digest.String() {
		return permanentError{fmt.Errorf("the registry stored blob %s as %s", desc.Digest, got)}
	}
	return nil
}

// status asks how many bytes of the upload at loc the registry holds, and
// the URL to go on with. It returns -1 bytes when the registry does not
// say, or says "0-0", which distribution answers for both no byte and one.
func (u *Uploader) status(ctx context.Context, loc *url.URL) (*url.URL, int64, error) {
	resp, err := u.do(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusOK, http.StatusAccepted:
	case http.StatusNotFound:
		return nil, 0, fmt.Errorf("upload status: %w: %w", errdef.ErrNotFound, responseError(resp))
	default:
		return nil, 0, responseError(resp)
	}
	next := loc
	if resp.Header.Get("Location") != "" {
		if next, err = location(resp); err != nil {
			return nil, 0, err
		}
	}
	end, ok := rangeEnd(resp.Header.Get("Range"))
	if !ok || end <= 1 {
		return next, -1, nil
	}
	return next, end, nil
}

// cancel abandons an upload, best effort, even when ctx is done.
func (u *Uploader) cancel(ctx context.Context, loc *url.URL) {
	if loc == nil {
		return
	}
	ctx, stop := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer stop()
	if resp, err := u.do(ctx, http.MethodDelete, loc.String(), nil); err == nil {
		resp.Body.Close()
	}
}

// rangeEnd reads an upload's Range header, "0-<last byte>", as the number
// of bytes held.
func rangeEnd(h string) (int64, bool) {
	h = strings.TrimPrefix(h, "bytes=")
	first, last, ok := strings.Cut(h, "-")
	if !ok || first != "0" {
		return 0, false
	}
	n, err := strconv.ParseInt(last, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n + 1, true
}

// repositoryURL is the API base of a repository of repo's registry.
func repositoryURL(repo *remote.Repository, repository string) string {
	scheme := "https"
	if repo.PlainHTTP {
		scheme = "http"
	}
	return fmt.Sprintf("%s://%s/v2/%s", scheme, repo.Reference.Host(), repository)
}

func (u *Uploader) do(ctx context.Context, method, target string, body io.Reader, edit ...func(*http.Request)) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	for _, e := range edit {
		e(req)
	}
	resp, err := repoClient(u.Repo).Do(req)
	var ue *url.Error
	if errors.As(err, &ue) {
		// The upload URL's query is a long state token.
		if parsed, perr := url.Parse(ue.URL); perr == nil {
			ue.URL = redactURL(parsed).String()
		}
	}
	return resp, err
}

func repoClient(repo *remote.Repository) remote.Client {
	if repo.Client == nil {
		return auth.DefaultClient
	}
	return repo.Client
}

// location reads an upload's Location, relative to the request, refusing
// one on another host or one that leaves HTTPS, as oras-go does: the
// client would send the registry's credentials there.
func location(resp *http.Response) (*url.URL, error) {
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("%s %s: the registry gave no upload location: %w", resp.Request.Method, redactURL(resp.Request.URL), err)
	}
	req := resp.Request.URL
	if loc.Hostname() != req.Hostname() || portOf(loc) != portOf(req) {
		return nil, permanentError{fmt.Errorf("upload location %q is on another host than the registry %q", loc.Host, req.Host)}
	}
	if req.Scheme == "https" && loc.Scheme != "https" {
		return nil, permanentError{fmt.Errorf("upload location %q leaves HTTPS", loc.Host)}
	}
	return loc, nil
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// responseError reads a registry's error answer as oras-go does, without
// the query of the URL (upload state tokens).
func responseError(resp *http.Response) error {
	e := &errcode.ErrorResponse{Method: resp.Request.Method, URL: redactURL(resp.Request.URL), StatusCode: resp.StatusCode}
	var body struct {
		Errors errcode.Errors `json:"errors"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<10)).Decode(&body); err == nil {
		e.Errors = body.Errors
	}
	return e
}

func redactURL(u *url.URL) *url.URL {
	c := *u
	c.RawQuery, c.ForceQuery = "", false
	return &c
}

// chunkBody is the body of one upload request. The HTTP transport may go
// on reading a body after the request failed; Close, called once the
// request returned, waits for a read in progress and stops later ones, so
// that the blobReader can be rewound safely.
type chunkBody struct {
	mu     sync.Mutex
	r      io.Reader
	closed bool
}

var errBodyClosed = errors.New("upload body read after the request ended")

func (c *chunkBody) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, errBodyClosed
	}
	return c.r.Read(p)
}

func (c *chunkBody) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

// blobReader reads a blob from its source for one copy, checking it
// against its digest as it goes: when the last bytes do not give the
// digest, it withholds them and returns an error wrapping
// content.ErrMismatchedDigest, so that an upload carrying them fails
// before the registry can commit it. (content.NewVerifyReader checks only
// once everything was read, and cannot go back.)
//
// A failure of the source stream is retried from where it stopped; an
// upload can rewind it to the point a registry reports, from the hash
// state saved at the start of each chunk (mark).
//
// It keeps the context of the copy it serves, as an http.Request does.
type blobReader struct {
	ctx  context.Context
	desc ocispec.Descriptor
	open Opener
	rc   io.ReadCloser // nil until opened at pos
	pos  int64
	h    hash.Hash
	// marks are the hash states at offsets, ascending.
	marks []hashMark
	// err, once set, is returned by every later call: a mismatch, or a
	// source that failed too often.
	err error
}

type hashMark struct {
	off   int64
	state []byte // nil: the hash cannot be saved, only restarted (off 0)
}

// NewReader reads the blob desc with open, checked against its digest as
// it streams: the last bytes of content that does not match are withheld
// and an error wrapping content.ErrMismatchedDigest is returned instead. A
// failure of the stream is retried from where it stopped.
func NewReader(ctx context.Context, desc ocispec.Descriptor, open Opener) (io.ReadCloser, error) {
	return newBlobReader(ctx, desc, open)
}

func newBlobReader(ctx context.Context, desc ocispec.Descriptor, open Opener) (*blobReader, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("blob %q: %w", desc.Digest, err)
	}
	b := &blobReader{ctx: ctx, desc: desc, open: open, h: desc.Digest.Algorithm().Hash()}
	b.marks = []hashMark{{off: 0}}
	// A blob of no bytes is never read: check it here.
	if desc.Size == 0 {
		if got := digest.NewDigest(desc.Digest.Algorithm(), b.h); got != desc.Digest {
			return nil, fmt.Errorf("blob %s has no bytes, whose digest is %s: %w", desc.Digest, got, content.ErrMismatchedDigest)
		}
	}
	return b, nil
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	left := b.desc.Size - b.pos
	if left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	failures := 0
	for {
		if b.rc == nil {
			rc, err := b.open(b.ctx, b.pos)
			if err != nil {
				if err := b.retrySource(&failures, err); err != nil {
					return 0, err
				}
				continue
			}
			b.rc = rc
		}
		n, err := b.rc.Read(p)
		if n > 0 {
			b.h.Write(p[:n])
			b.pos += int64(n)
			if b.pos == b.desc.Size {
				b.closeSource()
				if got := digest.NewDigest(b.desc.Digest.Algorithm(), b.h); got != b.desc.Digest {
					b.err = fmt.Errorf("blob %s read from the source has digest %s: %w", b.desc.Digest, got, content.ErrMismatchedDigest)
					return 0, b.err
				}
			} else if err != nil {
				// Open again at the new position on the next call.
				b.closeSource()
			}
			return n, nil
		}
		if err == nil {
			continue
		}
		// An end before Size bytes is a cut stream too.
		b.closeSource()
		if err := b.retrySource(&failures, err); err != nil {
			return 0, err
		}
	}
}

// retrySource decides on a failure of the source: after a pause, try
// again (nil), or give up (the error, then sticky).
func (b *blobReader) retrySource(failures *int, err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	var resp *errcode.ErrorResponse
	*failures++
	if *failures > maxSourceFailures || b.ctx.Err() != nil || errors.Is(err, errdef.ErrNotFound) ||
		(errors.As(err, &resp) && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests) {
		b.err = fmt.Errorf("reading blob %s from the source at byte %d: %w", b.desc.Digest, b.pos, err)
		return b.err
	}
	if perr := backoff.Sleep(b.ctx, pause.Delay(*failures)); perr != nil {
		b.err = perr
		return perr
	}
	return nil
}

// mark saves the hash state at the current position.
func (b *blobReader) mark() {
	if last := b.marks[len(b.marks)-1]; last.off == b.pos {
		return
	}
	m, ok := b.h.(encoding.BinaryMarshaler)
	if !ok {
		return
	}
	state, err := m.MarshalBinary()
	if err != nil {
		return
	}
	b.marks = append(b.marks, hashMark{off: b.pos, state: state})
}

// rewind moves the reader to off, at most its position: back to the last
// mark before it, then reading on from the source.
func (b *blobReader) rewind(off int64) error {
	if b.err != nil {
		return b.err
	}
	if off > b.pos {
		return fmt.Errorf("blob %s: the registry holds %d bytes, more than the %d sent", b.desc.Digest, off, b.pos)
	}
	if off < b.pos {
		i := len(b.marks) - 1
		for b.marks[i].off > off {
			i--
		}
		m := b.marks[i]
		b.marks = b.marks[:i+1]
		h := b.desc.Digest.Algorithm().Hash()
		if m.state != nil {
			if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(m.state); err != nil {
				return fmt.Errorf("blob %s: restoring the hash: %w", b.desc.Digest, err)
			}
		}
		b.closeSource()
		b.h, b.pos = h, m.off
	}
	_, err := io.CopyN(io.Discard, b, off-b.pos)
	return err
}

func (b *blobReader) closeSource() {
	if b.rc != nil {
		b.rc.Close()
		b.rc = nil
	}
}

// Close closes the source stream.
func (b *blobReader) Close() error {
	b.closeSource()
	return nil
}

// FetchOpener opens a blob of src at an offset: with a range request when
// src is a registry repository, by seeking when its content can seek (an
// OCI layout's files), else by reading up to the offset.
func FetchOpener(src content.Fetcher, desc ocispec.Descriptor) Opener {
	if repo, ok := src.(*remote.Repository); ok {
		return func(ctx context.Context, off int64) (io.ReadCloser, error) {
			return fetchRange(ctx, repo, desc, off)
		}
	}
	return func(ctx context.Context, off int64) (io.ReadCloser, error) {
		rc, err := src.Fetch(ctx, desc)
		if err != nil || off == 0 {
			return rc, err
		}
		if s, ok := rc.(io.Seeker); ok {
			if _, err := s.Seek(off, io.SeekStart); err == nil {
				return rc, nil
			}
		}
		if _, err := io.CopyN(io.Discard, rc, off); err != nil {
			rc.Close()
			return nil, err
		}
		return rc, nil
	}
}

// fetchRange GETs a blob of repo from off on. A registry that ignores the
// Range header sends it all, and the bytes before off are skipped.
func fetchRange(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, off int64) (io.ReadCloser, error) {
	ref := repo.Reference
	ref.Reference = desc.Digest.String()
	ctx = auth.AppendRepositoryScope(ctx, ref, auth.ActionPull)
	u := repositoryURL(repo, ref.Repository) + "/blobs/" + desc.Digest.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
	}
	resp, err := repoClient(repo).Do(req)
	if err != nil {
		return nil, err
	}
	skip := int64(0)
	switch resp.StatusCode {
	case http.StatusOK:
		skip = off
		if resp.ContentLength >= 0 && resp.ContentLength != desc.Size {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: %d bytes, expected %d", redactURL(req.URL), resp.ContentLength, desc.Size)
		}
	case http.StatusPartialContent:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", off)) {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: asked for bytes from %d, got %q", redactURL(req.URL), off, resp.Header.Get("Content-Range"))
		}
	case http.StatusNotFound:
		resp.Body.Close()
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdef.ErrNotFound)
	default:
		defer resp.Body.Close()
		return nil, responseError(resp)
	}
	if skip > 0 {
		if _, err := io.CopyN(io.Discard, resp.Body, skip); err != nil {
			resp.Body.Close()
			return nil, err
		}
	}
	return resp.Body, nil
}

func orDefault(v, def int64) int64 {
	if v > 0 {
		return v
	}
	return def
}

// flights are the uploads under way in the process, by registry host and
// digest.
var flights = struct {
	sync.Mutex
	m map[string]*flight
}{m: map[string]*flight{}}

// flight is one upload under way; done is closed when it ended, with err.
type flight struct {
	key        string
	repository string
	done       chan struct{}
	err        error
}

// joinFlight returns the upload of desc to host under way, or starts one
// for repository, which the caller then leads and must finish.
func joinFlight(host string, desc ocispec.Descriptor, repository string) (*flight, bool) {
	key := host + "/" + desc.Digest.String()
	flights.Lock()
	defer flights.Unlock()
	if f := flights.m[key]; f != nil {
		return f, false
	}
	f := &flight{key: key, repository: repository, done: make(chan struct{})}
	flights.m[key] = f
	return f, true
}

func (f *flight) finish(err error) {
	flights.Lock()
	delete(flights.m, f.key)
	flights.Unlock()
	f.err = err
	close(f.done)
}
