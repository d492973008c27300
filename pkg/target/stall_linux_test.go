package target_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
)

// TestStallSlowUpload checks that a slow upload that keeps moving is no
// stall: the registry takes 64 KiB every 400 ms through a small receive
// window, as over a slow link, so that most of the body waits in the
// client's send buffer after the last read of it, well past the limit.
func TestStallSlowUpload(t *testing.T) {
	const limit = time.Second
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 32<<10) })
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64<<10)
		for {
			time.Sleep(400 * time.Millisecond)
			if _, err := io.ReadFull(r.Body, buf); err != nil {
				break
			}
		}
		w.WriteHeader(http.StatusCreated)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	repo := openHost(t, strings.TrimPrefix(srv.URL, "http://"), target.RemoteOptions{StallTimeout: limit})
	data := make([]byte, 1536<<10)
	err, took := within(t, 60*time.Second, func(ctx context.Context) error {
		// A body that cannot be rewound, as a blob streamed from a source.
		body := io.MultiReader(bytes.NewReader(data))
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, srv.URL+"/v2/containerdisks/fedora/blobs/uploads/x", body)
		if err != nil {
			return err
		}
		resp, err := repo.Client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return errors.New(resp.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("slow upload failed after %v: %v", took, err)
	}
	if took < 4*limit {
		t.Fatalf("took %v, want a transfer longer than four limits", took)
	}
	t.Logf("1.5 MiB uploaded at 160 KiB/s in %v", took.Round(time.Millisecond))
}
