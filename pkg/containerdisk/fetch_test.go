package containerdisk_test

import (
	"context"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
)

func TestFetchManifest(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	data := []byte(`{"schemaVersion":2}`)
	desc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, data)
	if err := store.Push(ctx, desc, strings.NewReader(string(data))); err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := containerdisk.FetchManifestJSON(ctx, store, desc, &m); err != nil || m.SchemaVersion != 2 {
		t.Fatalf("FetchManifestJSON = %+v, %v", m, err)
	}
	big := desc
	big.Size = containerdisk.MaxManifestSize + 1
	if _, err := containerdisk.FetchManifest(ctx, store, big); err == nil || !strings.Contains(err.Error(), "expected a manifest, index or config") {
		t.Errorf("FetchManifest of %d bytes = %v, want a refusal", big.Size, err)
	}
}
