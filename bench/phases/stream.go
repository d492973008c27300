package main

// An experiment, not the product: the layer made as in
// pkg/containerdisk/layer.go (tar of disk/ and disk/<file>, pgzip BestSpeed
// with 1 MiB blocks and 4 in flight, sha256 of the input, the tar and the
// blob), but streamed to the registry while it is compressed, in one
// chunked-transfer PATCH of an upload session, instead of written to a
// temporary file and uploaded afterwards. The digest is needed only by the
// closing PUT. It measures what overlapping compression with the
// registry's ingest would gain (-stream).

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"

	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
)

func runStream(ctx context.Context, diskPath, dst string) error {
	ref, err := target.Parse(dst)
	if err != nil {
		return err
	}
	p := start("stream: layer made and uploaded at once")
	layer, diffID, err := streamLayer(ctx, diskPath, ref.Registry, ref.Repository)
	if err != nil {
		return err
	}
	p.done()

	p = start("stream: config, manifest, tag")
	repo, err := target.OpenRepository(ref, target.RemoteOptions{})
	if err != nil {
		return err
	}
	cfg, _ := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	})
	cfgDesc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageConfig, cfg)
	if err := repo.Push(ctx, cfgDesc, bytes.NewReader(cfg)); err != nil {
		return err
	}
	m, _ := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: cfgDesc, Layers: []ocispec.Descriptor{layer},
	})
	mDesc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, m)
	if err := repo.PushReference(ctx, mDesc, bytes.NewReader(m), ref.Reference); err != nil {
		return err
	}
	p.done()
	fmt.Println(mDesc.Digest)
	return nil
}

func streamLayer(ctx context.Context, diskPath, host, repo string) (ocispec.Descriptor, digest.Digest, error) {
	in, err := os.Open(diskPath)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	base := "http://" + host
	resp, err := http.Post(base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return ocispec.Descriptor{}, "", fmt.Errorf("starting upload: %s", resp.Status)
	}
	loc, err := url.Parse(base)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if loc, err = loc.Parse(resp.Header.Get("Location")); err != nil {
		return ocispec.Descriptor{}, "", err
	}

	pr, pw := io.Pipe()
	blobHash, diffHash, inHash := sha256.New(), sha256.New(), sha256.New()
	counter := &countWriter{}
	type result struct {
		loc string
		err error
	}
	uploaded := make(chan result, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodPatch, loc.String(), pr)
		if err != nil {
			pr.CloseWithError(err)
			uploaded <- result{err: err}
			return
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			pr.CloseWithError(err)
			uploaded <- result{err: err}
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			err = fmt.Errorf("uploading: %s", resp.Status)
		}
		pr.CloseWithError(err)
		uploaded <- result{resp.Header.Get("Location"), err}
	}()

	zw, err := pgzip.NewWriterLevel(io.MultiWriter(pw, blobHash, counter), pgzip.BestSpeed)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := zw.SetConcurrency(1<<20, 4); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	tw := tar.NewWriter(io.MultiWriter(zw, diffHash))
	epoch := time.Unix(0, 0).UTC()
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "disk/", Mode: 0o555, Uid: 107, Gid: 107, ModTime: epoch},
		{Typeflag: tar.TypeReg, Name: "disk/" + filepath.Base(diskPath), Mode: 0o444, Size: fi.Size(), Uid: 107, Gid: 107, ModTime: epoch},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return ocispec.Descriptor{}, "", err
		}
	}
	if _, err := io.CopyBuffer(tw, io.TeeReader(in, inHash), make([]byte, 1<<20)); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := tw.Close(); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := zw.Close(); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	pw.Close()
	res := <-uploaded
	if res.err != nil {
		return ocispec.Descriptor{}, "", res.err
	}
	dgst := digest.NewDigestFromBytes(digest.SHA256, blobHash.Sum(nil))
	if loc, err = loc.Parse(res.loc); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	q := loc.Query()
	q.Set("digest", dgst.String())
	loc.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), nil)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return ocispec.Descriptor{}, "", fmt.Errorf("closing upload: %s", resp.Status)
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: dgst, Size: counter.n}
	return desc, digest.NewDigestFromBytes(digest.SHA256, diffHash.Sum(nil)), nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
