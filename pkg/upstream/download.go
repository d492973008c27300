package upstream

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/rogpeppe/go-internal/lockedfile"
	"github.com/ulikunitz/xz"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/internal/ctxio"
)

// Download is one disk file to download.
type Download struct {
	// URL is where the file is: http://, https:// or file://.
	URL string
	// Checksum is of the file at URL as upstream publishes it
	// (compressed, if it is); required.
	Checksum containerdisk.Checksum
	// Compression is how the file at URL is compressed: "", "gzip", "xz"
	// or "zstd".
	Compression string
	// CacheDir holds the downloaded disks; required.
	CacheDir string
	// Progress, when set, is called once, when the first response with
	// data arrives, with the number of bytes it will bring (the rest of the
	// file when a partial download is resumed; -1 when the server does
	// not say); the writer it returns is given the bytes as they arrive.
	Progress func(total int64) io.Writer
}

// Downloaded is a disk file in the cache.
type Downloaded struct {
	// Path is the (decompressed) disk file in the cache.
	Path string
	// Cached says nothing was downloaded: the cache had it.
	Cached bool
	// Bytes is how many bytes were received over the network (or copied
	// from a file:// URL) in this call.
	Bytes int64
	// Resumed says the download continued a partial file (HTTP Range).
	Resumed bool
}

// Compressions Download decompresses.
var compressions = map[string]bool{"": true, "gzip": true, "xz": true, "zstd": true}

// errRangeNotSatisfiable is a request for the bytes from an offset at or
// past the end of the file (HTTP 416).
var errRangeNotSatisfiable = errors.New("range not satisfiable")

// Download puts the disk file d describes in d.CacheDir and returns its
// path: CacheDir/ALGORITHM/HEX is the verified, decompressed disk, and
// HEX.part the partial upstream file, which a later call resumes. A disk
// already in the cache is returned without any request. The checksum is
// computed as the file streams in; a file that does not match it is deleted
// and reported as a *containerdisk.ChecksumMismatchError, after one more
// download from the start if the mismatch may be the fault of a partial
// file an earlier run left. Network errors,
// dropped connections, 5xx and 429 are retried, resuming with HTTP Range
// where the download stopped. A missing file is an error wrapping
// catalog.ErrNotFound.
//
// Download is safe to call concurrently, from one process or several
// sharing CacheDir: one of them downloads a given checksum while the others
// wait for it, holding a lock on the file HEX.lock.
func (c *Client) Download(ctx context.Context, d Download) (Downloaded, error) {
	sum, err := containerdisk.ParseChecksum(d.Checksum.String())
	switch {
	case d.URL == "":
		return Downloaded{}, errors.New("downloading: no URL given")
	case err != nil:
		return Downloaded{}, fmt.Errorf("downloading %s: %w", d.URL, err)
	case d.CacheDir == "":
		return Downloaded{}, fmt.Errorf("downloading %s: no cache directory given", d.URL)
	case !compressions[d.Compression]:
		return Downloaded{}, fmt.Errorf("downloading %s: unknown compression %q: expected gzip, xz, zstd or none", d.URL, d.Compression)
	}
	d.Checksum = sum
	dir := filepath.Join(d.CacheDir, sum.Algorithm)
	final := filepath.Join(dir, sum.Hex)
	if isFile(final) {
		return Downloaded{Path: final, Cached: true}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Downloaded{}, fmt.Errorf("downloading %s: %w", d.URL, err)
	}
	unlock, err := lock(ctx, final)
	if err != nil {
		return Downloaded{}, fmt.Errorf("downloading %s: %w", d.URL, err)
	}
	defer unlock()
	// Whoever held the lock may have downloaded it.
	if isFile(final) {
		return Downloaded{Path: final, Cached: true}, nil
	}
	removeTemps(dir, sum.Hex)
	return c.download(ctx, d, final)
}

// download downloads d into final, holding its lock.
func (c *Client) download(ctx context.Context, d Download, final string) (Downloaded, error) {
	fail := func(err error) (Downloaded, error) {
		return Downloaded{}, fmt.Errorf("downloading %s: %w", d.URL, err)
	}
	open, err := c.opener(d.URL)
	if err != nil {
		return fail(err)
	}
	t, err := c.openPart(ctx, d, final, open)
	if err != nil {
		return fail(err)
	}
	if err := t.fetch(ctx); err != nil {
		t.part.Close()
		if t.offset == 0 {
			os.Remove(t.partPath)
		}
		return fail(err)
	}
	if actual := hex.EncodeToString(t.h.Sum(nil)); actual != d.Checksum.Hex {
		t.part.Close()
		os.Remove(t.partPath)
		return Downloaded{}, &containerdisk.ChecksumMismatchError{
			Path:     d.URL,
			Expected: d.Checksum,
			Actual:   containerdisk.Checksum{Algorithm: d.Checksum.Algorithm, Hex: actual},
		}
	}
	if err := t.place(ctx); err != nil {
		return fail(err)
	}
	return t.res, nil
}

// partDownload is the state of one download into HEX.part, kept across its
// attempts so that each goes on where the last one stopped.
type partDownload struct {
	c        *Client
	d        Download
	open     func(ctx context.Context, offset int64, ifRange string) (*body, error)
	final    string
	partPath string
	part     *os.File
	res      Downloaded
	h        hash.Hash
	// offset is the size of the .part, all of it hashed.
	offset int64
	// earlier says the .part holds bytes of an earlier run, which a
	// checksum mismatch may be the fault of.
	earlier bool
	// version names the file the .part holds bytes of, for If-Range.
	version  string
	modified time.Time
	progress io.Writer
	best     int64 // the most bytes the .part held
	buf      []byte
}

// openPart opens (or creates) final's .part and hashes what it holds, so
// that a download an earlier run left goes on from its end.
func (c *Client) openPart(ctx context.Context, d Download, final string, open func(ctx context.Context, offset int64, ifRange string) (*body, error)) (*partDownload, error) {
	partPath := final + ".part"
	part, err := os.OpenFile(partPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	t := &partDownload{c: c, d: d, open: open, final: final, partPath: partPath, part: part,
		res: Downloaded{Path: final}, h: newHash(d.Checksum.Algorithm)}
	t.offset, err = io.Copy(t.h, ctxio.Reader(ctx, part))
	if err != nil {
		part.Close()
		return nil, err
	}
	t.earlier = t.offset > 0
	t.best = t.offset
	t.buf = make([]byte, 256<<10)
	return t, nil
}

// restart empties the .part, for a download from the first byte.
func (t *partDownload) restart() error {
	if err := t.part.Truncate(0); err != nil {
		return err
	}
	if _, err := t.part.Seek(0, io.SeekStart); err != nil {
		return err
	}
	t.h.Reset()
	t.offset, t.res.Resumed, t.earlier, t.version = 0, false, false, ""
	return nil
}

func (t *partDownload) verified() bool { return hex.EncodeToString(t.h.Sum(nil)) == t.d.Checksum.Hex }

// fetch runs the attempts until the .part holds the whole file.
func (t *partDownload) fetch(ctx context.Context) error {
	err := t.c.retry(ctx, t.d.URL, t.attempt)
	if err == nil && t.earlier && !t.verified() {
		// Rather than fail for a .part an earlier run left corrupt,
		// download the whole file once more.
		if t.c.opts.Log != nil {
			t.c.opts.Log("downloading %s again from the start: the partial download it resumed does not match its checksum", t.d.URL)
		}
		if err = t.restart(); err == nil {
			err = t.c.retry(ctx, t.d.URL, t.attempt)
		}
	}
	return err
}

// attempt is one request for the rest of the file, appended to the .part.
// It reports whether the .part grew past its longest so far, for retry to
// count failures only when no progress is made.
func (t *partDownload) attempt(ctx context.Context) (bool, error) {
	// The attempt is abandoned when nothing arrives for Timeout.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := time.AfterFunc(t.c.opts.Timeout, func() { cancel(errStalled) })
	defer timer.Stop()

	b, err := t.open(ctx, t.offset, t.version)
	if errors.Is(err, errRangeNotSatisfiable) {
		// The .part is complete, or longer than the file.
		if t.offset > 0 && t.verified() {
			return false, nil
		}
		if err := t.restart(); err != nil {
			return false, err
		}
		b, err = t.open(ctx, 0, "")
	}
	if err != nil {
		return false, t.c.attemptError(ctx, err)
	}
	defer b.Close()
	if err := t.align(b); err != nil {
		return false, err
	}
	return t.receive(ctx, b, timer)
}

// align fits the .part to where b starts, and takes what b says of the
// file.
func (t *partDownload) align(b *body) error {
	switch {
	case b.start == t.offset:
		t.res.Resumed = t.res.Resumed || t.offset > 0
	case b.start == 0: // the server ignored Range, or the file changed
		if err := t.restart(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("asked for the bytes from %d on, received those from %d", t.offset, b.start)
	}
	if t.offset == 0 {
		t.version = b.validator
	}
	if !b.modified.IsZero() {
		t.modified = b.modified
	}
	if t.progress == nil && t.d.Progress != nil {
		if t.progress = t.d.Progress(b.length); t.progress == nil {
			t.progress = io.Discard
		}
	}
	return nil
}

// receive appends b to the .part, hashing it, and pushes the stall timer
// back with each read.
func (t *partDownload) receive(ctx context.Context, b *body, timer *time.Timer) (bool, error) {
	var received int64
	for {
		n, rerr := b.Read(t.buf)
		if n > 0 {
			timer.Reset(t.c.opts.Timeout)
			if _, err := t.part.Write(t.buf[:n]); err != nil {
				return false, err
			}
			t.h.Write(t.buf[:n])
			if t.progress != nil {
				_, _ = t.progress.Write(t.buf[:n])
			}
			t.offset += int64(n)
			received += int64(n)
			t.res.Bytes += int64(n)
		}
		if rerr == io.EOF && b.length >= 0 && received < b.length {
			rerr = fmt.Errorf("received %d of %d bytes: %w", received, b.length, io.ErrUnexpectedEOF)
		}
		if rerr == io.EOF {
			return false, nil
		}
		if rerr != nil {
			progressed := t.offset > t.best
			t.best = max(t.best, t.offset)
			return progressed, &networkError{t.c.attemptError(ctx, rerr)}
		}
	}
}

// place puts the verified .part in place as the disk, closing it.
func (t *partDownload) place(ctx context.Context) error {
	if t.d.Compression == "" {
		// Synced before the rename, so that a crash cannot leave a
		// verified name on unwritten data.
		err := t.part.Sync()
		if cerr := t.part.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = stamp(t.partPath, t.modified)
		}
		if err == nil {
			err = os.Rename(t.partPath, t.final)
		}
		return err
	}
	if err := t.part.Close(); err != nil {
		return err
	}
	// The verified .part stays until the disk is in place, so that a
	// failure here costs no new download.
	if err := decompress(ctx, t.partPath, t.final, t.d.Compression); err != nil {
		return err
	}
	if err := stamp(t.final, t.modified); err != nil {
		return err
	}
	os.Remove(t.partPath)
	return nil
}

// body is a response body, or a local file, from an offset.
type body struct {
	io.ReadCloser
	// start is the offset of its first byte in the file.
	start int64
	// length is how many bytes it holds; -1 when unknown.
	length int64
	// validator names the version of the file, for If-Range.
	validator string
	// modified is when the file last changed upstream; zero when unknown.
	modified time.Time
}

// opener returns how to open url from an offset on.
func (c *Client) opener(rawURL string) (func(ctx context.Context, offset int64, ifRange string) (*body, error), error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "http", "https":
		return func(ctx context.Context, offset int64, ifRange string) (*body, error) {
			return c.openHTTP(ctx, rawURL, offset, ifRange)
		}, nil
	case "file":
		p, err := localPath(rawURL, u)
		if err != nil {
			return nil, err
		}
		return func(_ context.Context, offset int64, _ string) (*body, error) {
			return openLocal(p, offset)
		}, nil
	}
	return nil, fmt.Errorf("unsupported URL scheme %q: expected http, https or file", u.Scheme)
}

// openHTTP requests url from offset on. When ifRange is set, the server
// sends the bytes from offset only if the file is still the one that
// validator (an ETag or a date) names, and all of it otherwise.
func (c *Client) openHTTP(ctx context.Context, url string, offset int64, ifRange string) (*body, error) {
	var rng string
	if offset > 0 {
		rng = fmt.Sprintf("bytes=%d-", offset)
	} else {
		ifRange = ""
	}
	// Accept-Encoding: identity keeps the transport from decompressing
	// what the checksum is of.
	resp, err := c.get(ctx, url, "Accept-Encoding", "identity", "Range", rng, "If-Range", ifRange)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return &body{resp.Body, 0, resp.ContentLength, validator(resp.Header), lastModified(resp.Header)}, nil
	case http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		first, last, ok := parseContentRange(cr)
		if !ok {
			resp.Body.Close()
			return nil, fmt.Errorf("%s with Content-Range %q: expected bytes FIRST-LAST/SIZE", resp.Status, cr)
		}
		return &body{resp.Body, first, last - first + 1, ifRange, lastModified(resp.Header)}, nil
	case http.StatusRequestedRangeNotSatisfiable:
		resp.Body.Close()
		return nil, errRangeNotSatisfiable
	}
	defer resp.Body.Close()
	return nil, newStatusError(url, resp)
}

// validator is what an If-Range header can name the version of a file
// by: its strong ETag, or else its Last-Modified date.
func validator(h http.Header) string {
	if etag := h.Get("ETag"); etag != "" && !strings.HasPrefix(etag, "W/") {
		return etag
	}
	return h.Get("Last-Modified")
}

func lastModified(h http.Header) time.Time {
	t, err := http.ParseTime(h.Get("Last-Modified"))
	if err != nil {
		return time.Time{}
	}
	return t
}

// stamp gives the cached disk the upstream file's modification time, so
// that an image built from it (whose creation time defaults to its disk's)
// is the same on every machine and every run.
func stamp(path string, t time.Time) error {
	if t.IsZero() {
		return nil
	}
	return os.Chtimes(path, t, t)
}

func openLocal(path string, offset int64) (*body, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, catalog.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && st.IsDir() {
		err = fmt.Errorf("%s is a directory, not a disk file", path)
	}
	if err == nil && offset > 0 && offset >= st.Size() {
		err = errRangeNotSatisfiable
	}
	if err == nil {
		_, err = f.Seek(offset, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &body{f, offset, st.Size() - offset, "", st.ModTime()}, nil
}

// parseContentRange reads "bytes FIRST-LAST/SIZE" (SIZE may be "*").
func parseContentRange(v string) (first, last int64, ok bool) {
	r, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, false
	}
	r, _, found = strings.Cut(r, "/")
	if !found {
		return 0, 0, false
	}
	f, l, found := strings.Cut(r, "-")
	if !found {
		return 0, 0, false
	}
	first, err1 := strconv.ParseInt(f, 10, 64)
	last, err2 := strconv.ParseInt(l, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first {
		return 0, 0, false
	}
	return first, last, true
}

func newHash(algorithm string) hash.Hash {
	if algorithm == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

// decompress writes the decompressed content of src to final, through a
// temporary file that is removed on failure.
func decompress(ctx context.Context, src, final, compression string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fail := func(err error) error { return fmt.Errorf("decompressing %s: %w", compression, err) }
	br := bufio.NewReaderSize(in, 1<<20)
	var r io.Reader
	switch compression {
	case "gzip":
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fail(err)
		}
		defer zr.Close()
		r = zr
	case "xz":
		xr, err := xz.NewReader(br)
		if err != nil {
			return fail(err)
		}
		r = xr
	case "zstd":
		zr, err := zstd.NewReader(br)
		if err != nil {
			return fail(err)
		}
		defer zr.Close()
		r = zr
	default:
		return fmt.Errorf("unknown compression %q", compression)
	}
	tmp, err := os.CreateTemp(filepath.Dir(final), filepath.Base(final)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// Read errors are the decompressor's, or ctx's; write errors the disk's.
	cr := &errReader{r: ctxio.Reader(ctx, r)}
	if _, err := io.Copy(tmp, cr); err != nil {
		if cr.err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fail(cr.err)
		}
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), final)
}

// errReader remembers the error its reader returned.
type errReader struct {
	r   io.Reader
	err error
}

func (r *errReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// removeTemps removes the temporary files of a process that died while it
// decompressed HEX; they are only written under the lock that is held.
func removeTemps(dir, hex string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, hex+".") && strings.HasSuffix(n, ".tmp") {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

// keyLocks holds, for each cache file of the process, a channel that holds
// a value while a Download has it.
var keyLocks sync.Map

// lock locks the cache file final for this goroutine against the others of
// the process, then against other processes with the file final+".lock",
// which stays so that every process locks the same file. It gives up when
// ctx ends.
func lock(ctx context.Context, final string) (unlock func(), err error) {
	v, _ := keyLocks.LoadOrStore(final, make(chan struct{}, 1))
	ch := v.(chan struct{})
	select {
	case ch <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	type locked struct {
		unlock func()
		err    error
	}
	done := make(chan locked, 1)
	go func() {
		u, err := lockedfile.MutexAt(final + ".lock").Lock()
		done <- locked{u, err}
	}()
	select {
	case l := <-done:
		if l.err != nil {
			<-ch
			return nil, l.err
		}
		return func() { l.unlock(); <-ch }, nil
	case <-ctx.Done():
		go func() {
			if l := <-done; l.err == nil {
				l.unlock()
			}
			<-ch
		}()
		return nil, ctx.Err()
	}
}

// Modified returns the modification time a download of url gives the
// cached disk (its Last-Modified date, or a local file's modification
// time), which a build's creation time defaults to, without downloading
// it: a HEAD request. It is zero when the upstream sends no date.
func (c *Client) Modified(ctx context.Context, rawURL string) (time.Time, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the date of %s: %w", rawURL, err)
	}
	if u.Scheme == "file" {
		p, err := localPath(rawURL, u)
		if err != nil {
			return time.Time{}, err
		}
		st, err := os.Stat(p)
		if err != nil {
			return time.Time{}, fmt.Errorf("reading the date of %s: %w", rawURL, err)
		}
		return st.ModTime(), nil
	}
	var t time.Time
	err = c.retry(ctx, rawURL, func(ctx context.Context) (bool, error) {
		ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, rawURL, nil)
		if err != nil {
			return false, err
		}
		req.Header.Set("User-Agent", c.opts.UserAgent)
		resp, err := c.opts.HTTPClient.Do(req)
		if err != nil {
			return false, c.attemptError(ctx, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, newStatusError(rawURL, resp)
		}
		t = lastModified(resp.Header)
		return false, nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the date of %s: %w", rawURL, err)
	}
	return t, nil
}
