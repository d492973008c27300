package verify

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSeedRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		userData []byte
		metaData []byte
	}{
		{"script", []byte("#!/bin/sh\necho hello\n"), []byte("instance-id: i-1\nlocal-hostname: vm\n")},
		{"cloud-config over a sector", append([]byte("#cloud-config\nruncmd:\n"), bytes.Repeat([]byte("  - echo padding\n"), 300)...), []byte("instance-id: i-2\n")},
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "seed.iso")
			if err := WriteNoCloudSeed(path, tt.userData, tt.metaData); err != nil {
				t.Fatal(err)
			}
			img, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			label, files := readISO(t, img)
			if label != SeedLabel {
				t.Errorf("volume label %q, want %q", label, SeedLabel)
			}
			want := map[string]string{"user-data": string(tt.userData), "meta-data": string(tt.metaData)}
			if !reflect.DeepEqual(files, want) {
				t.Errorf("files read back:\n%q\nwant:\n%q", files, want)
			}

			// Other readers: util-linux's blkid and, when installed,
			// genisoimage's isoinfo with Rock Ridge names.
			if blkid, err := exec.LookPath("blkid"); err == nil {
				out, err := exec.Command(blkid, "-p", "-o", "value", "-s", "LABEL", path).Output()
				if err != nil {
					t.Fatalf("blkid: %v", err)
				}
				if got := strings.TrimSpace(string(out)); got != SeedLabel {
					t.Errorf("blkid LABEL %q, want %q", got, SeedLabel)
				}
				out, _ = exec.Command(blkid, "-p", "-o", "value", "-s", "TYPE", path).Output()
				if got := strings.TrimSpace(string(out)); got != "iso9660" {
					t.Errorf("blkid TYPE %q, want iso9660", got)
				}
			} else {
				t.Log("blkid not installed (Debian package util-linux); label checked in Go only")
			}
			if isoinfo, err := exec.LookPath("isoinfo"); err == nil {
				for name, data := range want {
					out, err := exec.Command(isoinfo, "-R", "-i", path, "-x", "/"+name).Output()
					if err != nil {
						t.Fatalf("isoinfo -x /%s: %v", name, err)
					}
					if string(out) != data {
						t.Errorf("isoinfo -x /%s: %q, want %q", name, out, data)
					}
				}
			}
		})
	}
}

// readISO is an independent reader of what WriteNoCloudSeed writes: the
// primary volume descriptor's label and the root directory's files, named
// by their Rock Ridge NM records, with their contents.
func readISO(t *testing.T, img []byte) (string, map[string]string) {
	t.Helper()
	const sector = 2048
	if len(img)%sector != 0 || len(img) < 18*sector {
		t.Fatalf("image is %d bytes: expected whole 2048-byte sectors past the descriptors", len(img))
	}
	pvd := img[16*sector:]
	if pvd[0] != 1 || string(pvd[1:6]) != "CD001" {
		t.Fatalf("sector 16 is not a primary volume descriptor: % x", pvd[:8])
	}
	if vol := binary.LittleEndian.Uint32(pvd[80:]); int(vol)*sector != len(img) {
		t.Errorf("volume space size %d sectors, image has %d", vol, len(img)/sector)
	}
	if be := binary.BigEndian.Uint32(pvd[84:]); be != binary.LittleEndian.Uint32(pvd[80:]) {
		t.Errorf("volume space size: big-endian %d differs from little-endian", be)
	}
	term := img[17*sector:]
	if term[0] != 255 || string(term[1:6]) != "CD001" {
		t.Errorf("sector 17 is not a set terminator")
	}
	label := strings.TrimRight(string(pvd[40:72]), " ")
	rootRec := pvd[156:190]
	rootExtent := binary.LittleEndian.Uint32(rootRec[2:])
	rootSize := binary.LittleEndian.Uint32(rootRec[10:])
	dir := img[int(rootExtent)*sector : int(rootExtent)*sector+int(rootSize)]

	files := map[string]string{}
	sawSP := false
	for off := 0; off < len(dir) && dir[off] != 0; off += int(dir[off]) {
		rec := dir[off : off+int(dir[off])]
		idLen := int(rec[32])
		id := rec[33 : 33+idLen]
		su := rec[33+idLen+(1-idLen%2):]
		if rec[25]&2 != 0 {
			if len(id) == 1 && id[0] == 0 && bytes.HasPrefix(su, []byte("SP")) {
				sawSP = true
			}
			continue
		}
		name := ""
		for len(su) >= 4 && su[2] > 0 && int(su[2]) <= len(su) {
			if string(su[:2]) == "NM" {
				name = string(su[5:su[2]])
			}
			su = su[su[2]:]
		}
		if name == "" {
			t.Fatalf("file %q has no Rock Ridge name", id)
		}
		extent := binary.LittleEndian.Uint32(rec[2:])
		size := binary.LittleEndian.Uint32(rec[10:])
		files[name] = string(img[int(extent)*sector : int(extent)*sector+int(size)])
	}
	if !sawSP {
		t.Error(`root "." record has no SUSP SP entry: Rock Ridge names would be ignored`)
	}
	return label, files
}
