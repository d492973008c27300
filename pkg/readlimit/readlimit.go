// Package readlimit reads the files a user names (catalogs, configurations,
// tokens, certificate bundles) with a bound on their size, so that a wrong
// path such as /dev/zero, or a hostile file, fails at once with a message
// instead of growing memory until the machine gives out.
package readlimit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Limits of the files the suite reads. They are far above what a real file
// of each kind holds and far below what would strain a machine.
const (
	// Config bounds a YAML catalog, a mirror configuration, a list of
	// images, a results file or a documentation page: 4 MiB.
	Config = 4 << 20
	// Secret bounds a token or a PEM bundle of certificate authorities:
	// 1 MiB (a system's whole CA bundle is about 200 KiB).
	Secret = 1 << 20
	// YAMLEntries bounds the lines, list items and keys of a YAML file,
	// counted before it is parsed (see CheckYAML): a 4 MiB file of
	// one-byte list items would otherwise make the parser build millions
	// of nodes, about 250 bytes each.
	YAMLEntries = 200_000
)

// chunk is how much is read between two looks at the context.
const chunk = 64 << 10

// LimitError reports a file over one of the limits. Path is the file, What
// the kind of file the limit is for ("a catalog file"), Limit the limit in
// Unit ("bytes", or "YAML entries").
type LimitError struct {
	Path  string
	What  string
	Limit int64
	Unit  string
}

func (e *LimitError) Error() string {
	if e.Unit == unitBytes {
		return fmt.Sprintf("reading %s: larger than %s, the limit for %s; check that the path names the right file (a device or an endless stream is refused too)", e.Path, Size(e.Limit), e.What)
	}
	return fmt.Sprintf("%s: more than %d %s, the limit for %s; expected a smaller file (split it, or check the path)", e.Path, e.Limit, e.Unit, e.What)
}

// InputError marks the error as the input's, so that a command exits 2.
func (e *LimitError) InputError() bool { return true }

const unitBytes = "bytes"

// Size formats a byte count as the limits are written: 4 MiB, 64 KiB.
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// ReadFile reads the file at path, at most limit bytes of it; a longer file
// is a *LimitError naming the file, the limit and what (the kind of file,
// such as "a catalog file"). It reads in chunks and stops when ctx is
// done, also while a read of a pipe or a FIFO waits for data, so that
// SIGINT and SIGTERM stay effective.
func ReadFile(ctx context.Context, path string, limit int64, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(ctx, f, path, limit, what)
}

// Read is ReadFile for an open file (or any reader); name is what errors
// call it. A reader with SetReadDeadline (an *os.File of a pipe) is woken
// when ctx is done.
func Read(ctx context.Context, r io.Reader, name string, limit int64, what string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if d, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok {
		stop := context.AfterFunc(ctx, func() {
			// Regular files have no deadline (ErrNoDeadline): their
			// reads end by themselves.
			_ = d.SetReadDeadline(time.Unix(1, 0))
		})
		defer stop()
	}
	var data []byte
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if int64(len(data)) > limit {
			return nil, &LimitError{Path: name, What: what, Limit: limit, Unit: unitBytes}
		}
		if cap(data)-len(data) < chunk {
			// Grow by doubling, but never past what one more chunk
			// after the limit needs.
			n := min(max(2*cap(data), chunk), int(limit)+1+chunk)
			data = append(make([]byte, 0, n), data...)
		}
		n, err := r.Read(data[len(data):min(cap(data), len(data)+chunk)])
		data = data[:len(data)+n]
		if errors.Is(err, io.EOF) {
			if int64(len(data)) > limit {
				return nil, &LimitError{Path: name, What: what, Limit: limit, Unit: unitBytes}
			}
			return data, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
	}
}

// CheckYAML refuses YAML text that a parser would turn into more than max
// nodes, before it is parsed: it counts the bytes that can start a line, a
// list item, a key or a flow entry (newlines, '-', ':', ',', '[', '{', '?');
// a parser builds at most about twice as many nodes. Real files stay far
// below: a configuration of 10000 tags, one a line, counts about 30000.
func CheckYAML(name string, data []byte, max int, what string) error {
	n := 0
	for _, b := range data {
		switch b {
		case '\n', '-', ':', ',', '[', '{', '?':
			n++
		}
	}
	if n > max {
		return &LimitError{Path: name, What: what, Limit: int64(max), Unit: "YAML entries (lines, list items, keys)"}
	}
	return nil
}
