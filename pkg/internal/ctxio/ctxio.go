// Package ctxio holds the one reader that stops when its context ends, for
// the long copies of the core (downloads, layers, layout and archive blobs).
package ctxio

import (
	"context"
	"io"
)

// Reader returns a reader of r that fails with ctx's error at the next
// Read once ctx is done, so that a cancelled copy of a large file stops
// soon (Ctrl-C) instead of reading on to the end.
func Reader(ctx context.Context, r io.Reader) io.Reader {
	return reader{ctx: ctx, r: r}
}

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
