package testregistry

import (
	"errors"
	"io"
)

// ErrCut is what a CutAfter body returns once its bytes are read.
var ErrCut = errors.New("connection dropped by the test")

// CutAfter returns rc failing with ErrCut after n bytes, as a request body
// or a response cut by a dropped connection does.
func CutAfter(rc io.ReadCloser, n int64) io.ReadCloser {
	return &cutReader{ReadCloser: rc, n: n}
}

type cutReader struct {
	io.ReadCloser
	n int64
}

func (c *cutReader) Read(b []byte) (int, error) {
	if c.n <= 0 {
		return 0, ErrCut
	}
	if int64(len(b)) > c.n {
		b = b[:c.n]
	}
	k, err := c.ReadCloser.Read(b)
	c.n -= int64(k)
	return k, err
}
