package containerdisk_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
)

// TestAssembleIndexIsBuildsIndex: images built one architecture per build
// (as on separate machines), read back and assembled, give the index one
// Build of both makes, in both formats and whichever order they come in;
// images of different creation times, or of two formats, are refused an
// index.
func TestAssembleIndexIsBuildsIndex(t *testing.T) {
	ctx := context.Background()
	amd64, arm64 := disks(t)
	created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	sum := containerdisk.Checksum{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}
	for _, format := range []containerdisk.Format{containerdisk.FormatOCI, containerdisk.FormatDocker} {
		opts := containerdisk.Options{Format: format, Created: created, Version: "1.0", Source: "https://example.com/amd64.qcow2"}
		// amd64 is customized: its spec digest is in its config and index
		// entry, and must be read back into the assembled index.
		spec := "sha256:" + strings.Repeat("c", 64)
		both := []containerdisk.Disk{{Architecture: "amd64", Path: amd64, Checksum: sum, Verified: true, Customize: spec}, {Architecture: "arm64", Path: arm64}}
		one, err := containerdisk.Build(ctx, layout(t), both, opts)
		if err != nil {
			t.Fatal(err)
		}
		store := layout(t)
		var images []containerdisk.Image
		for _, d := range []containerdisk.Disk{both[1], both[0]} {
			res, err := containerdisk.Build(ctx, store, []containerdisk.Disk{d}, opts)
			if err != nil {
				t.Fatal(err)
			}
			img, err := containerdisk.ReadImage(ctx, store, res.Root)
			if err != nil {
				t.Fatal(err)
			}
			images = append(images, img)
		}
		got, err := containerdisk.AssembleIndex(ctx, store, images, containerdisk.Options{Format: format, Version: "1.0", Source: "https://example.com/amd64.qcow2"})
		if err != nil {
			t.Fatal(err)
		}
		if got.Root.Digest != one.Root.Digest || got.Root.MediaType != one.Root.MediaType {
			t.Errorf("%s: assembled %s %s, one build made %s %s", format, got.Root.MediaType, got.Root.Digest, one.Root.MediaType, one.Root.Digest)
		}
		if images[1].Checksum != sum || images[1].Customize != spec || images[0].Customize != "" || images[0].Disk.Format != "raw" || images[1].Disk.Format != "qcow2" {
			t.Errorf("%s: read back %+v", format, images)
		}
	}

	store := layout(t)
	var images []containerdisk.Image
	for i, d := range []containerdisk.Disk{{Architecture: "amd64", Path: amd64}, {Architecture: "arm64", Path: arm64}} {
		res, err := containerdisk.Build(ctx, store, []containerdisk.Disk{d}, containerdisk.Options{Created: created.Add(time.Duration(i) * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		img, err := containerdisk.ReadImage(ctx, store, res.Root)
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, img)
	}
	if _, err := containerdisk.AssembleIndex(ctx, store, images, containerdisk.Options{}); err == nil || !strings.Contains(err.Error(), "expected one creation time") {
		t.Errorf("images of two dates: %v, want a refusal", err)
	}
	if _, err := containerdisk.AssembleIndex(ctx, store, []containerdisk.Image{images[0], images[0]}, containerdisk.Options{}); err == nil || !strings.Contains(err.Error(), "two images for architecture amd64") {
		t.Errorf("two amd64 images: %v, want a refusal", err)
	}
}
