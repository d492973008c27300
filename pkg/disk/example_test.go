package disk_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerdisk/kubectl-containerdisk/pkg/disk"
)

func ExampleInspectReaderAt() {
	// A blank 1 MiB raw disk: all it has is an MBR boot signature.
	img := make([]byte, 1<<20)
	img[510], img[511] = 0x55, 0xaa

	info, err := disk.InspectReaderAt(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(info.Format, info.VirtualSize)
	// Output: raw 1048576
}

func ExampleInspect() {
	dir, err := os.MkdirTemp("", "disk-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	// A download that was never decompressed.
	path := filepath.Join(dir, "disk.img.gz")
	if err := os.WriteFile(path, []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00"), 0o644); err != nil {
		fmt.Println(err)
		return
	}

	_, err = disk.Inspect(path)
	fmt.Println(errors.Is(err, disk.ErrNotDisk))
	var invalid *disk.InvalidDiskError
	if errors.As(err, &invalid) {
		fmt.Println(invalid.Reason)
	}
	// Output:
	// true
	// the file is a gzip-compressed file
}
