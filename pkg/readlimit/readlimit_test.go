package readlimit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestReadFileLimit(t *testing.T) {
	dir := t.TempDir()
	exact := filepath.Join(dir, "exact")
	over := filepath.Join(dir, "over")
	if err := os.WriteFile(exact, bytes.Repeat([]byte("a"), 200<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(over, bytes.Repeat([]byte("a"), 200<<10+1), 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := ReadFile(context.Background(), exact, 200<<10, "a test file")
	if err != nil || len(data) != 200<<10 {
		t.Errorf("ReadFile of a file of the limit = %d bytes, %v; want all of it", len(data), err)
	}
	for _, path := range []string{over, "/dev/zero"} {
		_, err := ReadFile(context.Background(), path, 200<<10, "a test file")
		var le *LimitError
		if !errors.As(err, &le) || le.Path != path || le.Limit != 200<<10 {
			t.Errorf("ReadFile(%s) = %v, want a LimitError naming it and the limit", path, err)
			continue
		}
		want := "reading " + path + ": larger than 200 KiB, the limit for a test file; "
		if !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %q, want it to start with %q", err, want)
		}
	}
	if _, err := ReadFile(context.Background(), filepath.Join(dir, "missing"), 1<<20, "a test file"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile of a missing file = %v, want ErrNotExist", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if data, err := ReadFile(context.Background(), empty, 1<<20, "a test file"); err != nil || len(data) != 0 {
		t.Errorf("ReadFile of an empty file = %q, %v", data, err)
	}
}

// TestReadFileEndlessMemory reads /dev/zero with a 4 MiB limit: the memory
// allocated stays near the limit, not the gigabytes an unbounded read grows
// to.
func TestReadFileEndlessMemory(t *testing.T) {
	start := time.Now()
	_, err := ReadFile(context.Background(), "/dev/zero", Config, "a catalog file")
	if err == nil {
		t.Fatal("ReadFile(/dev/zero) succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("ReadFile(/dev/zero) took %s", d)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ReadFile(context.Background(), "/dev/zero", Config, "a catalog file")
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 6*Config {
		t.Errorf("reading /dev/zero allocated %d MiB, want at most %d MiB for a limit of %d MiB", n>>20, 6*Config>>20, Config>>20)
	} else {
		t.Logf("reading /dev/zero allocated %.1f MiB for a limit of %d MiB", float64(n)/(1<<20), Config>>20)
	}
}

// TestReadCancel reads a pipe whose writer never writes nor closes, as a
// FIFO or a process substitution may: cancelling the context (as SIGINT and
// SIGTERM do) ends the read.
func TestReadCancel(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := w.Write([]byte("some bytes, then nothing")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() {
		_, err := Read(ctx, r, "the pipe", Config, "a catalog file")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Read = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked 5 s after the context was cancelled")
	}
	// A cancelled context reads nothing.
	if _, err := ReadFile(ctx, "/dev/zero", Config, "a catalog file"); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadFile with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestCheckYAML(t *testing.T) {
	ok := []byte("units:\n- source: quay.io/containerdisks\n  images:\n  - {repository: fedora, tags: ['41', '42']}\n")
	if err := CheckYAML("ok.yaml", ok, YAMLEntries, "a test file"); err != nil {
		t.Errorf("CheckYAML of a small file: %v", err)
	}
	for name, data := range map[string]string{
		"flow":  "tags: [" + strings.Repeat("a,", 1000) + "]\n",
		"block": strings.Repeat("- a\n", 600),
		"map":   "{" + strings.Repeat("a: b, ", 600) + "}",
	} {
		err := CheckYAML(name, []byte(data), 1000, "a test file")
		var le *LimitError
		if !errors.As(err, &le) || !strings.HasPrefix(err.Error(), name+": more than 1000 YAML entries") {
			t.Errorf("CheckYAML(%s) = %v, want a LimitError naming it", name, err)
		}
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{4 << 20: "4 MiB", 64 << 10: "64 KiB", 1000: "1000 bytes", 1<<20 + 1: "1048577 bytes"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}
