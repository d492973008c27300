// Package upstream reads the distributions' download sites: metadata files
// (fetched concurrently, each at most once per run, with timeouts and
// retries), checksum files and directory listings in their real formats, and
// disk downloads that resume, decompress, verify their checksum while
// streaming and land in a cache keyed by checksum.
package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
)

// Options configures a Client.
type Options struct {
	// HTTPClient makes the requests; a client with sensible dial and
	// header timeouts when nil.
	HTTPClient *http.Client
	// UserAgent is sent with every request.
	UserAgent string
	// Retries is how many times a failed request (5xx, 429, connection
	// reset, timeout) is retried; DefaultRetries when zero, none when
	// negative.
	Retries int
	// Backoff is the first wait between retries, doubled each time;
	// DefaultBackoff when zero.
	Backoff time.Duration
	// Timeout bounds each metadata request; DefaultTimeout when zero.
	Timeout time.Duration
}

// Defaults of Options.
const (
	DefaultRetries = 4
	DefaultBackoff = 500 * time.Millisecond
	DefaultTimeout = 60 * time.Second
)

// Client reads upstream sites over http(s):// and file://.
type Client struct {
	opts Options
}

var _ catalog.Fetcher = (*Client)(nil)

// NewClient returns a Client.
func NewClient(opts Options) *Client {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	return &Client{opts: opts}
}

// Fetch returns the content of a metadata file.
func (c *Client) Fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("fetching %s: %w", url, catalog.ErrNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}
