// Package testdisk makes small disk images for tests: raw disks with a
// partition table and qcow2 files converted from them by the real qemu-img.
package testdisk

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
)

// WriteRaw writes a raw disk of size bytes (a multiple of 512) at path: an
// MBR with one partition, then blocks of compressible text and of random
// bytes, so compression has something to do. seed makes the random part.
func WriteRaw(path string, size int64, seed uint64) error {
	if size < 4096 || size%512 != 0 {
		return fmt.Errorf("raw disk size %d: expected a multiple of 512 of at least 4096", size)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	mbr := make([]byte, 512)
	// One Linux partition from sector 2048 (or 1) to the end.
	start := uint32(2048)
	if size/512 <= 2048 {
		start = 1
	}
	entry := mbr[446:462]
	entry[4] = 0x83
	binary.LittleEndian.PutUint32(entry[8:], start)
	binary.LittleEndian.PutUint32(entry[12:], uint32(size/512)-start)
	mbr[510], mbr[511] = 0x55, 0xaa
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	block := make([]byte, 64<<10)
	// Every fourth 64 KiB block stays a hole, like the unused space of a
	// real disk; the others alternate between text and noise.
	for off, i := int64(64<<10), 0; off+int64(len(block)) <= size; off, i = off+int64(len(block)), i+1 {
		switch i % 4 {
		case 0:
			continue
		case 1, 2:
			for j := range block {
				block[j] = "containerdisk boots "[j%20]
			}
			binary.LittleEndian.PutUint64(block, uint64(off)^seed)
		case 3:
			for j := 0; j < len(block); j += 8 {
				binary.LittleEndian.PutUint64(block[j:], rng.Uint64())
			}
		}
		if _, err := f.WriteAt(block, off); err != nil {
			return err
		}
	}
	return f.Close()
}

// QemuImg runs qemu-img with args and returns its combined output.
func QemuImg(args ...string) ([]byte, error) {
	path, err := exec.LookPath("qemu-img")
	if err != nil {
		return nil, fmt.Errorf("qemu-img is needed to make test disks: install it with 'apt-get install qemu-utils': %w", err)
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("qemu-img %v: %w: %s", args, err, out)
	}
	return out, nil
}

// WriteQCOW2 writes a qcow2 of the raw disk WriteRaw makes, converted by
// qemu-img; compressed asks for compressed clusters, as cloud images have.
func WriteQCOW2(path string, size int64, seed uint64, compressed bool) error {
	raw := path + ".raw"
	if err := WriteRaw(raw, size, seed); err != nil {
		return err
	}
	defer os.Remove(raw)
	args := []string{"convert", "-f", "raw", "-O", "qcow2"}
	if compressed {
		args = append(args, "-c")
	}
	_, err := QemuImg(append(args, raw, path)...)
	return err
}

// WriteOverlay writes a qcow2 at path whose backing file is base.
func WriteOverlay(path, base string) error {
	_, err := QemuImg("create", "-f", "qcow2", "-b", base, "-F", "qcow2", path)
	return err
}
