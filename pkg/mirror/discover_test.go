package mirror_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/containerdisk/kubectl-containerdisk/internal/testregistry"
	"github.com/containerdisk/kubectl-containerdisk/internal/teststall"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/mirror"
)

// pushTiny pushes a small artifact to name:tag for each tag.
func pushTiny(t testing.TB, r *testregistry.Registry, name string, tags ...string) {
	t.Helper()
	ctx := t.Context()
	repo := repository(t, r, name)
	desc, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.example.test", oras.PackManifestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		if err := repo.Tag(ctx, desc, tag); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRepositoriesPages(t *testing.T) {
	ctx := t.Context()
	r := testregistry.New(t)
	want := []string{"containerdisks/alma", "containerdisks/centos", "containerdisks/debian", "containerdisks/fedora", "containerdisks/ubuntu"}
	for _, name := range slices.Backward(want) {
		pushTiny(t, r, name, "1")
	}
	reg, err := remote.NewRegistry(r.Host)
	if err != nil {
		t.Fatal(err)
	}
	reg.PlainHTTP = true
	reg.RepositoryListPageSize = 2

	r.ResetStats()
	var pages [][]string
	err = mirror.Repositories(ctx, reg, func(repos []string) error {
		pages = append(pages, repos)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{want[:2], want[2:4], want[4:]}, pages); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
	// Catalog requests count as Other.
	if got := r.Stats().Other; got != 3 {
		t.Errorf("%d catalog requests, want 3", got)
	}

	// An error of fn stops the listing and comes back as it is.
	stop := errors.New("enough")
	r.ResetStats()
	calls := 0
	err = mirror.Repositories(ctx, reg, func([]string) error { calls++; return stop })
	if err != stop || calls != 1 || r.Stats().Other != 1 {
		t.Errorf("Repositories = %v after %d calls and %d requests, want the error of fn after 1", err, calls, r.Stats().Other)
	}
}

func TestRepositoriesNoCatalog(t *testing.T) {
	// Registries without a catalog answer as GHCR does, or refuse the
	// catalog scope of a token as Docker Hub does.
	for _, tt := range []struct {
		status int
		body   string
		hint   string
	}{
		{http.StatusNotFound, `{"errors":[{"code":"NOT_FOUND","message":"404 page not found"}]}`, "it has no catalog API"},
		{http.StatusBadRequest, `{"errors":[{"code":"UNSUPPORTED","message":"the operation is unsupported"}]}`, "it has no catalog API"},
		{http.StatusUnauthorized, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, "log in as a user allowed to list the catalog"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tt.status)
			io.WriteString(w, tt.body)
		}))
		defer srv.Close()
		reg, err := remote.NewRegistry(strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		reg.PlainHTTP = true
		err = mirror.Repositories(t.Context(), reg, func([]string) error { return nil })
		if !errors.Is(err, mirror.ErrNoCatalog) || !strings.Contains(err.Error(), tt.hint) || !strings.Contains(err.Error(), "name the repositories in the config") {
			t.Errorf("status %d: Repositories = %v, want ErrNoCatalog with %q", tt.status, err, tt.hint)
		}
	}
}

func TestTagsPages(t *testing.T) {
	ctx := t.Context()
	r := testregistry.New(t)
	want := []string{"40", "41", "42", "43", "44", "45", "latest"}
	pushTiny(t, r, "containerdisks/fedora", want...)
	repo := repository(t, r, "containerdisks/fedora")
	repo.TagListPageSize = 3

	r.ResetStats()
	var pages [][]string
	if err := mirror.Tags(ctx, repo, func(tags []string) error {
		pages = append(pages, tags)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{want[:3], want[3:6], want[6:]}, pages); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
	if got := r.Stats().TagsList; got != 3 {
		t.Errorf("%d tag list requests, want 3", got)
	}

	// A repository that does not exist.
	err := mirror.Tags(ctx, repository(t, r, "containerdisks/nothing"), func([]string) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "listing the tags") || !strings.Contains(err.Error(), "404") {
		t.Errorf("Tags of a missing repository = %v", err)
	}
}

// platformInfo is what Inspect should say of a built image.
func platformInfo(img containerdisk.Image) mirror.PlatformInfo {
	p := img.Platform
	return mirror.PlatformInfo{
		Platform:  &p,
		Digest:    img.Manifest.Digest,
		MediaType: img.Manifest.MediaType,
		Size:      img.Manifest.Size + img.Config.Size + img.Layer.Size,
	}
}

func TestInspect(t *testing.T) {
	ctx := t.Context()
	r := testregistry.New(t)
	multi := push(t, r, "containerdisks/fedora:41", containerdisk.FormatOCI, disk{"amd64", 1}, disk{"arm64", 2}, disk{"s390x", 3})
	single := push(t, r, "containerdisks/cirros:0.6", containerdisk.FormatDocker, disk{"amd64", 4})

	t.Run("index", func(t *testing.T) {
		got, err := mirror.Inspect(ctx, repository(t, r, "containerdisks/fedora"), "41")
		if err != nil {
			t.Fatal(err)
		}
		want := mirror.ImageInfo{Digest: multi.Root.Digest, MediaType: ocispec.MediaTypeImageIndex, TotalSize: multi.Root.Size}
		for _, img := range multi.Images {
			want.Platforms = append(want.Platforms, platformInfo(img))
			want.TotalSize += platformInfo(img).Size
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Inspect (-want +got):\n%s", diff)
		}
		// By digest, and from an OCI layout, the same.
		byDigest, err := mirror.Inspect(ctx, repository(t, r, "containerdisks/fedora"), multi.Root.Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, byDigest); diff != "" {
			t.Errorf("Inspect by digest (-want +got):\n%s", diff)
		}
		store, err := oci.New(filepath.Join(t.TempDir(), "layout"))
		if err != nil {
			t.Fatal(err)
		}
		copyRef(t, repository(t, r, "containerdisks/fedora"), "41", store, "41")
		fromLayout, err := mirror.Inspect(ctx, store, "41")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, fromLayout); diff != "" {
			t.Errorf("Inspect of the layout (-want +got):\n%s", diff)
		}
	})

	t.Run("manifest", func(t *testing.T) {
		got, err := mirror.Inspect(ctx, repository(t, r, "containerdisks/cirros"), "0.6")
		if err != nil {
			t.Fatal(err)
		}
		img := single.Images[0]
		want := mirror.ImageInfo{
			Digest:    img.Manifest.Digest,
			MediaType: containerdisk.MediaTypeDockerManifest,
			Platforms: []mirror.PlatformInfo{platformInfo(img)},
			TotalSize: platformInfo(img).Size,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Inspect (-want +got):\n%s", diff)
		}
	})

	t.Run("shared layers", func(t *testing.T) {
		// An index whose two entries are the same image under two
		// platforms: each platform counts it whole, the total once.
		repo := repository(t, r, "containerdisks/fedora")
		amd := multi.Images[0]
		entries := []ocispec.Descriptor{amd.Manifest, amd.Manifest}
		entries[0].Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
		entries[1].Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64", Variant: "v2"}
		idx := pushIndex(t, repo, entries, "shared")
		got, err := mirror.Inspect(ctx, repo, "shared")
		if err != nil {
			t.Fatal(err)
		}
		size := platformInfo(amd).Size
		if len(got.Platforms) != 2 || got.Platforms[0].Size != size || got.Platforms[1].Size != size ||
			got.Platforms[1].Platform.Variant != "v2" || got.TotalSize != idx.Size+size {
			t.Errorf("Inspect = %+v, want two platforms of %d bytes and %d in all", got, size, idx.Size+size)
		}
	})

	t.Run("errors", func(t *testing.T) {
		repo := repository(t, r, "containerdisks/fedora")
		if _, err := mirror.Inspect(ctx, repo, "nope"); err == nil || !strings.Contains(err.Error(), "inspecting nope") {
			t.Errorf("Inspect of a missing tag = %v", err)
		}
		layer := multi.Images[0].Layer
		if _, err := mirror.Inspect(ctx, repo, layer.Digest.String()); err == nil {
			t.Error("Inspect of a layer succeeded")
		}
	})
}

// pushIndex pushes an OCI index of entries tagged tag.
func pushIndex(t testing.TB, repo oras.Target, entries []ocispec.Descriptor, tag string) ocispec.Descriptor {
	t.Helper()
	b := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"manifests":%s}`, ocispec.MediaTypeImageIndex, mustJSON(t, entries))
	desc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageIndex, b)
	if err := repo.Push(t.Context(), desc, strings.NewReader(string(b))); err != nil {
		t.Fatal(err)
	}
	if err := repo.Tag(t.Context(), desc, tag); err != nil {
		t.Fatal(err)
	}
	return desc
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEndlessListings checks that a registry whose Link: rel="next" header
// leads back to a page, or on without end, fails the listing instead of
// holding it forever.
func TestEndlessListings(t *testing.T) {
	for _, tt := range []struct {
		mode      string
		want      string
		wantPages int
	}{
		{teststall.LinkSelf, "sent page 1 of the tag list again as page 2", 2},
		{teststall.LinkNew, fmt.Sprintf("more than %d pages of the tag list", mirror.MaxListPages), mirror.MaxListPages + 1},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			s, err := teststall.Start(tt.mode)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			repo, err := remote.NewRepository(s.Host + "/containerdisks/fedora")
			if err != nil {
				t.Fatal(err)
			}
			repo.PlainHTTP = true
			n := 0
			err = mirror.Tags(ctx, repo, func(tags []string) error { n += len(tags); return nil })
			if !errors.Is(err, mirror.ErrEndlessListing) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Tags = %v after %d tags, want ErrEndlessListing: %q", err, n, tt.want)
			}
			if got := s.Pages(); got != tt.wantPages {
				t.Errorf("the registry served %d pages, want %d", got, tt.wantPages)
			}

			reg, err := remote.NewRegistry(s.Host)
			if err != nil {
				t.Fatal(err)
			}
			reg.PlainHTTP = true
			err = mirror.Repositories(ctx, reg, func([]string) error { return nil })
			if !errors.Is(err, mirror.ErrEndlessListing) || !strings.Contains(err.Error(), "the repository list") {
				t.Fatalf("Repositories = %v, want ErrEndlessListing", err)
			}
		})
	}
}
