package upload_test

import (
	"bytes"
	"context"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/containerdisk/kubectl-containerdisk/internal/testregistry"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upload"
)

func blob(t *testing.T, size int) ([]byte, ocispec.Descriptor) {
	t.Helper()
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(uint64(size), 1))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	return data, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(data), Size: int64(size)}
}

func repository(t *testing.T, reg *testregistry.Registry, name string) *remote.Repository {
	t.Helper()
	repo, err := remote.NewRepository(reg.Host + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	return repo
}

// slowOpener serves data, telling opened when it is first opened and then
// holding the first read for a while, so that a second upload starts while
// the first is under way.
func slowOpener(data []byte, opened chan<- struct{}) upload.Opener {
	var once sync.Once
	return func(_ context.Context, off int64) (io.ReadCloser, error) {
		once.Do(func() {
			close(opened)
			time.Sleep(300 * time.Millisecond)
		})
		return io.NopCloser(bytes.NewReader(data[off:])), nil
	}
}

func plainOpener(data []byte) upload.Opener {
	return func(_ context.Context, off int64) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data[off:])), nil
	}
}

// TestConcurrentUploadsSendABlobOnce uploads one blob to two repositories
// of a registry at once, and once more to the first repository: the bytes
// go up once; the second upload mounts the blob from the first
// repository, the third finds it in place.
func TestConcurrentUploadsSendABlobOnce(t *testing.T) {
	ctx := t.Context()
	reg := testregistry.New(t)
	data, desc := blob(t, 3<<20)
	first := &upload.Uploader{Repo: repository(t, reg, "disks/fedora")}
	second := &upload.Uploader{Repo: repository(t, reg, "disks/centos")}
	again := &upload.Uploader{Repo: repository(t, reg, "disks/fedora")}

	opened := make(chan struct{})
	type result struct {
		mounted bool
		err     error
	}
	results := make([]result, 3)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m, err := first.Upload(ctx, desc, nil, slowOpener(data, opened))
		results[0] = result{m, err}
	}()
	<-opened
	for i, u := range []*upload.Uploader{second, again} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := u.Upload(ctx, desc, nil, plainOpener(data))
			results[i+1] = result{m, err}
		}()
	}
	wg.Wait()

	for i, want := range []bool{false, true, true} {
		if results[i].err != nil || results[i].mounted != want {
			t.Errorf("upload %d: mounted %v, error %v; want mounted %v", i, results[i].mounted, results[i].err, want)
		}
	}
	st := reg.Stats()
	if st.BlobBytesIn != desc.Size {
		t.Errorf("the registry read %d bytes of uploads, want %d (the blob once)", st.BlobBytesIn, desc.Size)
	}
	for _, u := range []*upload.Uploader{first, second} {
		rc, err := u.Repo.Blobs().Fetch(ctx, desc)
		if err != nil {
			t.Fatalf("%s: %v", u.Repo.Reference, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, data) {
			t.Errorf("%s holds %d other bytes", u.Repo.Reference, len(got))
		}
	}
}

// TestFailedUploadLetsTheNextOneTry: when the upload under way fails, the
// one waiting for it uploads the blob itself.
func TestFailedUploadLetsTheNextOneTry(t *testing.T) {
	ctx := t.Context()
	reg := testregistry.New(t)
	data, desc := blob(t, 1<<20)
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 0xff

	opened := make(chan struct{})
	var errFirst error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, errFirst = (&upload.Uploader{Repo: repository(t, reg, "a")}).Upload(ctx, desc, nil, slowOpener(bad, opened))
	}()
	<-opened
	mounted, err := (&upload.Uploader{Repo: repository(t, reg, "b")}).Upload(ctx, desc, nil, plainOpener(data))
	wg.Wait()
	if errFirst == nil || !strings.Contains(errFirst.Error(), "digest") {
		t.Errorf("the corrupt upload: %v, want a digest mismatch", errFirst)
	}
	if err != nil || mounted {
		t.Errorf("the next upload: mounted %v, error %v; want uploaded", mounted, err)
	}
	if ok, err := repository(t, reg, "b").Blobs().Exists(ctx, desc); err != nil || !ok {
		t.Errorf("b lacks the blob: %v", err)
	}
}

// TestUploadRestartsWholeWhereChunksAreRefused puts a registry behind a
// proxy that behaves like a registry taking no chunks and keeping no
// upload state (PATCH refused, upload status unknown): when the one PUT of
// a blob is cut midway, the upload starts again, in one PUT.
func TestUploadRestartsWholeWhereChunksAreRefused(t *testing.T) {
	ctx := t.Context()
	reg := testregistry.New(t)
	data, desc := blob(t, 2<<20)
	backend := &url.URL{Scheme: "http", Host: reg.Host}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(backend)
			pr.Out.Host = pr.In.Host
		},
		ErrorHandler: func(http.ResponseWriter, *http.Request, error) { panic(http.ErrAbortHandler) },
		ErrorLog:     log.New(io.Discard, "", 0),
	}
	var mu sync.Mutex
	var seen []string
	puts := 0
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upload := strings.Contains(r.URL.Path, "/blobs/uploads/")
		mu.Lock()
		if upload {
			seen = append(seen, r.Method)
		}
		if upload && r.Method == http.MethodPut {
			puts++
			if puts == 1 {
				r.Body = testregistry.CutAfter(r.Body, desc.Size/2)
			}
		}
		mu.Unlock()
		switch {
		case upload && r.Method == http.MethodPatch:
			http.Error(w, `{"errors":[{"code":"UNSUPPORTED","message":"chunked uploads are not supported"}]}`, http.StatusMethodNotAllowed)
		case upload && r.Method == http.MethodGet:
			http.Error(w, `{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"upload unknown"}]}`, http.StatusNotFound)
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	proxy.Config.ErrorLog = log.New(io.Discard, "", 0)
	defer proxy.Close()

	repo, err := remote.NewRepository(strings.TrimPrefix(proxy.URL, "http://") + "/disks/fedora")
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	var resumed []int64
	u := &upload.Uploader{Repo: repo, OnResume: func(_ ocispec.Descriptor, off int64) { resumed = append(resumed, off) }}
	if _, err := u.Upload(ctx, desc, nil, plainOpener(data)); err != nil {
		t.Fatalf("upload: %v (requests %q)", err, seen)
	}
	if slices.Contains(seen, http.MethodPatch) {
		t.Errorf("requests %q: a PATCH was sent to a registry that takes none", seen)
	}
	if puts != 2 || !slices.Equal(resumed, []int64{0}) {
		t.Errorf("%d PUTs, resumed at %v; want the cut PUT, then the whole blob again from 0", puts, resumed)
	}
	rc, err := repository(t, reg, "disks/fedora").Blobs().Fetch(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Errorf("the registry holds %d other bytes", len(got))
	}
}
