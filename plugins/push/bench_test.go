// Benchmarks of the catalog publishing loop, "push --focus ... --to PREFIX",
// against a real registry and a fake upstream on loopback. Plain 'go test'
// does not run them; from the repository root:
//
//	# a scheduled run that finds everything up to date (10 runs)
//	go test ./plugins/push -run '^$' -bench 'CatalogNoop$' -benchtime=10x
//
//	# a first publish of one 3-arch entry of 1 GiB disks (one run)
//	go test ./plugins/push -run '^$' -bench 'CatalogColdPush3Arch$' -benchtime=1x -timeout 30m
//
//	# both, quickly, with 64 MiB disks
//	CATALOG_BENCH_SIZE_MIB=64 go test ./plugins/push -run '^$' -bench Catalog -benchtime=1x
//
// bench/catalog.sh runs both and prints the figures. They need qemu-img
// (apt-get install qemu-utils) to make the disks, and the cold push needs
// the go command, to build the push binary it runs.
package push_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
	"github.com/containerdisk/kubectl-containerdisk/internal/testregistry"
	"github.com/containerdisk/kubectl-containerdisk/internal/testupstream"
	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/push"
)

// rusageEnv, when set, makes the test binary the helper that runs a
// command and measures it (see runMeasured), rather than the tests.
const rusageEnv = "CATALOG_BENCH_RUSAGE_FILE"

func TestMain(m *testing.M) {
	if file := os.Getenv(rusageEnv); file != "" {
		os.Exit(runMeasured(file, os.Args[1:]))
	}
	// The in-process registry must not send traces to a collector.
	os.Setenv("OTEL_TRACES_EXPORTER", "none")
	os.Exit(m.Run())
}

// runMeasured runs args as a child process and writes to file when it
// started (Unix ns), its wall time and CPU time (ns) and its peak RSS
// (ru_maxrss, KiB), then exits with the child's exit code.
//
// It is a process of its own because Go starts children with vfork, and
// Linux carries the parent's peak RSS into the child's ru_maxrss at exec:
// started from the benchmark, the push binary would report the peak of the
// test process with the registry in it. Started from this small helper, it
// reports the larger of its own peak and the helper's, about 21 MiB.
func runMeasured(file string, args []string) int {
	if len(args) == 0 {
		fmt.Fprintf(os.Stderr, "%s=%s: expected a command to run\n", rusageEnv, file)
		return 2
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// The benchmark's context ends the helper; the child goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	line := fmt.Sprintf("%d %d %d %d\n", start.UnixNano(), wall, ru.Utime.Nano()+ru.Stime.Nano(), ru.Maxrss)
	if err := os.WriteFile(file, []byte(line), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return cmd.ProcessState.ExitCode()
}

// BenchmarkCatalogNoop measures the common scheduled run: every entry of a
// catalog of about 40 name:versions and 110 images is already published, so
// push only compares upstream with the checksums each index records beside
// its manifests. Each run is a new command, with its own upstream client,
// as a scheduled job is. It fails when a run downloads a disk, reads any
// blob (config or layer), makes other than one manifest GET per entry, or
// takes more than 2 s. One entry, from a catalog file, is customized: its
// image records the spec's digest beside the checksum, and a no-op run
// neither downloads nor customizes it. Its first publish (untimed) runs
// virt-customize on the guest disks of hack/guestdisk.sh.
func BenchmarkCatalogNoop(b *testing.B) {
	ctx := b.Context()
	siteDir := b.TempDir()
	site, err := testupstream.New(siteDir)
	if err != nil {
		b.Fatal(err)
	}
	siteURL, err := site.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { site.Close() })
	if err := site.PublishCurated(time.Now()); err != nil {
		b.Fatal(err)
	}
	// Many more Fedora releases, all of which releases.json lists and the
	// catalog keeps; 41 and 42 are among the curated builds.
	for v := 30; v <= 54; v++ {
		if v == 41 || v == 42 {
			continue
		}
		if err := site.PublishFedora(strconv.Itoa(v), "1.1"); err != nil {
			b.Fatal(err)
		}
	}
	catalogFile := publishGuest(b, siteDir)
	reg := testregistry.New(b)
	args := []string{
		"--catalog", catalogFile,
		"--focus", "*:*", "--dry-run=false", "--mirror", "*=" + siteURL,
		"--to", reg.Host + "/containerdisks", "--cache-dir", b.TempDir(),
		"--workers", "8", "-o", "json",
	}

	// The first publish, untimed, puts everything in place.
	recs := runCatalog(ctx, b, args)
	entries, images := len(recs), 0
	for _, r := range recs {
		if r.Push == nil || r.Push.Status != push.StatusPushed {
			b.Fatalf("first publish: %s:%s was not pushed: %+v", r.Name, r.Version, r)
		}
		images += len(r.Images)
	}
	if !slices.ContainsFunc(recs, func(r pipeline.Record) bool { return r.Name == "guest" }) {
		b.Fatal("first publish: the customized entry guest:1 is missing")
	}
	if _, disks := site.TotalRequests(); disks != images {
		b.Fatalf("first publish: %d disk downloads for %d images, want one each", disks, images)
	}

	var total testregistry.Stats
	var meta, disks int
	site.ResetRequests()
	reg.ResetStats()
	for b.Loop() {
		recs := runCatalog(ctx, b, args)
		for _, r := range recs {
			if r.Push == nil || r.Push.Status != push.StatusUpToDate {
				b.Fatalf("no-op run: %s:%s is not up to date: %+v", r.Name, r.Version, r)
			}
		}
		if len(recs) != entries {
			b.Fatalf("no-op run: %d entries, want %d", len(recs), entries)
		}
		// Checked run by run: the command has returned, so no request is
		// in flight and the counts are complete.
		st := reg.Stats()
		all, d := site.TotalRequests()
		reg.ResetStats()
		site.ResetRequests()
		switch {
		case d != 0:
			b.Fatalf("no-op run downloaded %d disks, want none", d)
		case st.BlobGet != 0 || st.BlobBytesOut != 0:
			b.Fatalf("no-op run read %d blobs (%d bytes), want none: each index records its checksums", st.BlobGet, st.BlobBytesOut)
		case st.ManifestGet != int64(entries) || st.ManifestHead != 0:
			b.Fatalf("no-op run made %d manifest GETs and %d HEADs for %d entries, want one GET each", st.ManifestGet, st.ManifestHead, entries)
		case st.BlobPost+st.BlobPut+st.ManifestPut != 0:
			b.Fatalf("no-op run wrote to the registry: %+v", st)
		}
		total = addStats(total, st)
		meta += all - d
		disks += d
	}

	n := float64(b.N)
	perRun := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(perRun.Microseconds())/1000, "ms/run")
	b.ReportMetric(float64(entries), "entries")
	b.ReportMetric(float64(images), "images")
	b.ReportMetric(float64(total.ManifestHead+total.ManifestGet+total.BlobHead+total.BlobGet)/n, "registry-requests/run")
	b.ReportMetric(float64(total.TagsList+total.Other)/n, "registry-other-requests/run")
	b.ReportMetric(float64(total.BlobGet)/n, "blob-GETs/run")
	b.ReportMetric(float64(total.BlobBytesOut)/n, "blob-bytes-out/run")
	b.ReportMetric(float64(meta)/n, "upstream-metadata-requests/run")
	b.ReportMetric(float64(disks)/n, "disk-downloads/run")
	if perRun > 2*time.Second {
		b.Fatalf("a no-op run of %d entries took %v, want at most 2s", entries, perRun)
	}
}

// publishGuest puts the amd64 and arm64 guest disks of hack/guestdisk.sh
// in the upstream site at guest/1/ with their SHA256SUMS, and returns a
// catalog file whose entry "guest" writes a file into both: file
// operations, which work on an arm64 disk on any host.
func publishGuest(b *testing.B, siteDir string) string {
	b.Helper()
	dir := filepath.Join(siteDir, "guest", "1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	var sums strings.Builder
	for _, arch := range []string{"amd64", "arm64"} {
		src, err := testdisk.GuestDisk(arch)
		if err != nil {
			b.Fatal(err)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			b.Fatal(err)
		}
		name := "guest-" + arch + ".qcow2"
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			b.Fatal(err)
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(sum[:]), name)
	}
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(sums.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(b.TempDir(), "guest.yaml")
	err := os.WriteFile(file, []byte(`entries:
- name: guest
  versions: ["1"]
  arches: [amd64, arm64]
  url: "{{.Base}}/{{.Version}}/guest-{{.Arch}}.qcow2"
  checksum: {file: "{{.Base}}/{{.Version}}/SHA256SUMS"}
  customize:
    commands:
    - write /etc/motd:customized
`), 0o644)
	if err != nil {
		b.Fatal(err)
	}
	return file
}

// runCatalog runs push in-process with args, which include -o json, and
// returns its records; any exit status but 0 fails b.
func runCatalog(ctx context.Context, b *testing.B, args []string) []pipeline.Record {
	b.Helper()
	var out, errOut bytes.Buffer
	streams := cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	if code := cli.Run(ctx, streams, "kubectl containerdisk push", args, push.NewCommand); code != cli.ExitOK {
		b.Fatalf("push %s: exit status %d\n%s", strings.Join(args, " "), code, errOut.String())
	}
	var recs []pipeline.Record
	err := pipeline.Decode(&out, func(r pipeline.Record, invalid error) error {
		recs = append(recs, r)
		return invalid
	})
	if err != nil {
		b.Fatalf("reading the records of push: %v", err)
	}
	return recs
}

func addStats(a, s testregistry.Stats) testregistry.Stats {
	a.BlobHead += s.BlobHead
	a.BlobGet += s.BlobGet
	a.BlobBytesOut += s.BlobBytesOut
	a.ManifestHead += s.ManifestHead
	a.ManifestGet += s.ManifestGet
	a.TagsList += s.TagsList
	a.Other += s.Other
	return a
}

// BenchmarkCatalogColdPush3Arch measures the first publish of a declarative
// catalog entry with three architectures: download every disk from
// upstream, check it, pack it into a layer and push the index to an empty
// registry, with an empty download cache. Run it once (-benchtime=1x).
//
// CATALOG_BENCH_SIZE_MIB (default 1024) is about the size of each qcow2
// file: its virtual size is a third larger, a quarter of it holes, as in
// bench/build-push.sh. MiB/s is the three files' size over the wall time.
//
// The command runs as the real binary, built into a temporary directory, in
// a process of its own, so that its peak RSS (ru_maxrss) and CPU time are
// its own, not those of this test binary with the registry, the upstream
// server and the disk generator in it; the test binary, run again as a
// helper, starts it and measures it (see runMeasured). The registry and the upstream stay in
// this process, as servers elsewhere would be.
//
// The upstream server records when it started and finished sending each
// disk; the benchmark fails when no two downloads were under way at once.
// With the times the registry received its first and last blob bytes, they
// split the run into its phases: download, making the layers, upload.
func BenchmarkCatalogColdPush3Arch(b *testing.B) {
	ctx := b.Context()
	mib := int64(1024)
	if s := os.Getenv("CATALOG_BENCH_SIZE_MIB"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			b.Fatalf("CATALOG_BENCH_SIZE_MIB=%q: expected a whole number of MiB, e.g. 64", s)
		}
		mib = n
	}
	bin := buildPush(b)

	work := b.TempDir()
	site, err := testupstream.New(filepath.Join(work, "upstream"))
	if err != nil {
		b.Fatal(err)
	}
	arches := []string{"amd64", "arm64", "s390x"}
	sums, diskBytes := writeDisks(b, site.Dir, arches, mib)
	spans := &diskSpans{next: site}
	srv := httptest.NewServer(spans)
	b.Cleanup(srv.Close)

	var cat strings.Builder
	fmt.Fprintf(&cat, "entries:\n- name: bench\n  base: %s\n  versions: [\"1.0\"]\n  arches: [%s]\n", srv.URL, strings.Join(arches, ", "))
	fmt.Fprintf(&cat, "  url: \"{{.Base}}/bench/disk-{{.Arch}}.qcow2\"\n  checksum:\n    algorithm: sha256\n    values:\n")
	for _, a := range arches {
		fmt.Fprintf(&cat, "      %s: %s\n", a, sums[a])
	}
	catalogFile := filepath.Join(work, "catalog.yaml")
	if err := os.WriteFile(catalogFile, []byte(cat.String()), 0o644); err != nil {
		b.Fatal(err)
	}

	var wall, cpu, download, layers, upload, overlap time.Duration
	var parallelism float64
	var peakRSS, uploaded int64
	run := 0
	for b.Loop() {
		b.StopTimer()
		run++
		dir := filepath.Join(work, fmt.Sprintf("run-%d", run))
		reg, err := testregistry.Start(filepath.Join(dir, "registry"))
		if err != nil {
			b.Fatal(err)
		}
		spans.reset()
		usage := filepath.Join(work, "rusage")
		cmd := exec.CommandContext(ctx, os.Args[0], bin,
			"--catalog", catalogFile, "--focus", "bench:*", "--dry-run=false",
			"--to", reg.Host+"/containerdisks", "--cache-dir", filepath.Join(dir, "cache"),
			"--temp-dir", dir, "-o", "json")
		cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", rusageEnv+"="+usage)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut

		b.StartTimer()
		up := watchUploads(reg)
		err = cmd.Run()
		firstUp, lastUp := up()
		b.StopTimer()

		if err != nil {
			reg.Close()
			b.Fatalf("push: %v\n%s", err, errOut.String())
		}
		var startNS, tookNS, cpuNS, rssKiB int64
		if data, err := os.ReadFile(usage); err != nil {
			b.Fatal(err)
		} else if _, err := fmt.Sscan(string(data), &startNS, &tookNS, &cpuNS, &rssKiB); err != nil {
			b.Fatalf("reading %s: %v", usage, err)
		}
		start, took := time.Unix(0, startNS), time.Duration(tookNS)
		var recs []pipeline.Record
		if err := pipeline.Decode(&out, func(r pipeline.Record, invalid error) error {
			recs = append(recs, r)
			return invalid
		}); err != nil {
			b.Fatal(err)
		}
		if len(recs) != 1 || recs[0].Push == nil || recs[0].Push.Status != push.StatusPushed || len(recs[0].Images) != len(arches) {
			b.Fatalf("push: want bench:1.0 pushed with %d images, got %+v\n%s", len(arches), recs, errOut.String())
		}
		st := reg.Stats()
		if err := reg.Close(); err != nil {
			b.Fatal(err)
		}
		got := spans.get()
		if len(got) < len(arches) {
			b.Fatalf("upstream served %d disk requests, want one per architecture: %+v", len(got), got)
		}
		two, union, sum := overlapOf(got)
		if two == 0 {
			b.Fatalf("the %d disks were downloaded one after the other, want them in parallel: %s", len(arches), describe(got, start))
		}
		if firstUp.IsZero() {
			b.Fatalf("push: the registry received no blob bytes\n%s", errOut.String())
		}
		b.Logf("run %d: %.2fs, peak RSS %d MiB; downloads: %s; uploads %.2fs-%.2fs", run, took.Seconds(), rssKiB>>10, describe(got, start), firstUp.Sub(start).Seconds(), lastUp.Sub(start).Seconds())

		wall += took
		cpu += time.Duration(cpuNS)
		peakRSS = max(peakRSS, rssKiB)
		download += lastEnd(got).Sub(start)
		layers += firstUp.Sub(lastEnd(got))
		upload += lastUp.Sub(firstUp)
		overlap += two
		parallelism += float64(sum) / float64(union)
		uploaded += st.BlobBytesIn
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}

	n := float64(b.N)
	secs := wall.Seconds() / n
	b.ReportMetric(float64(diskBytes)/(1<<20)/secs, "MiB/s")
	b.ReportMetric(secs, "s/run")
	b.ReportMetric(float64(diskBytes)/(1<<20)/float64(len(arches)), "disk-MiB")
	b.ReportMetric(float64(peakRSS)/1024, "peak-RSS-MiB")
	b.ReportMetric(cpu.Seconds()/n, "cpu-s/run")
	b.ReportMetric(float64(uploaded)/(1<<20)/n, "uploaded-MiB/run")
	b.ReportMetric(download.Seconds()/n, "download-s/run")
	b.ReportMetric(layers.Seconds()/n, "layers-s/run")
	b.ReportMetric(upload.Seconds()/n, "upload-s/run")
	b.ReportMetric(overlap.Seconds()/n, "download-overlap-s/run")
	b.ReportMetric(parallelism/n, "download-parallelism")
}

// watchUploads polls what reg has received until the returned function is
// called, which returns when the first and the last blob bytes arrived: the
// layers are all made before the first is sent, so the time from the last
// download to the first upload is the making of the layers.
func watchUploads(reg *testregistry.Registry) func() (first, last time.Time) {
	stop := make(chan struct{})
	done := make(chan struct{})
	var first, last time.Time
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var seen int64
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				if n := reg.Stats().BlobBytesIn; n != seen {
					if seen == 0 {
						first = now
					}
					seen, last = n, now
				}
			}
		}
	}()
	return func() (time.Time, time.Time) {
		close(stop)
		<-done
		return first, last
	}
}

// buildPush builds the push command as it ships into a temporary directory
// and returns its path.
func buildPush(b *testing.B) string {
	b.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		b.Fatalf("the go command is needed to build the push binary: %v", err)
	}
	bin := filepath.Join(b.TempDir(), "kubectl-containerdisk-push")
	cmd := exec.Command(goCmd, "build", "-trimpath", "-o", bin, "./kubectl-containerdisk-push")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building the push binary: %v\n%s", err, out)
	}
	return bin
}

// writeDisks writes a qcow2 of about mib MiB per architecture under
// dir/bench, each with its own content, and returns their SHA-256 in hex by
// architecture and their total size.
func writeDisks(b *testing.B, dir string, arches []string, mib int64) (map[string]string, int64) {
	b.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "bench"), 0o755); err != nil {
		b.Fatal(err)
	}
	// A quarter of the raw disk is holes, which qcow2 leaves out.
	virtual := (mib << 20) * 4 / 3 &^ (64<<10 - 1)
	sums := make([]string, len(arches))
	sizes := make([]int64, len(arches))
	errs := make([]error, len(arches))
	var wg sync.WaitGroup
	for i, a := range arches {
		wg.Go(func() {
			path := filepath.Join(dir, "bench", "disk-"+a+".qcow2")
			if errs[i] = testdisk.WriteQCOW2(path, virtual, uint64(i+1), false); errs[i] != nil {
				return
			}
			sums[i], sizes[i], errs[i] = sha256File(path)
		})
	}
	wg.Wait()
	out := map[string]string{}
	var total int64
	for i, a := range arches {
		if errs[i] != nil {
			b.Fatalf("making the %s disk: %v", a, errs[i])
		}
		out[a] = sums[i]
		total += sizes[i]
	}
	return out, total
}

func sha256File(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// diskSpans serves next and records when each disk GET started and when
// its last byte was handed to the connection.
type diskSpans struct {
	next http.Handler

	mu    sync.Mutex
	spans []span
}

type span struct {
	path       string
	start, end time.Time
}

func (d *diskSpans) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, ".qcow2") {
		d.next.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	d.next.ServeHTTP(w, r)
	end := time.Now()
	d.mu.Lock()
	d.spans = append(d.spans, span{path: r.URL.Path, start: start, end: end})
	d.mu.Unlock()
}

func (d *diskSpans) reset() {
	d.mu.Lock()
	d.spans = nil
	d.mu.Unlock()
}

func (d *diskSpans) get() []span {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.spans)
}

// overlapOf returns how long at least two of spans were under way at once,
// how long at least one was, and the sum of their lengths.
func overlapOf(spans []span) (two, union, sum time.Duration) {
	type event struct {
		at    time.Time
		delta int
	}
	var events []event
	for _, s := range spans {
		events = append(events, event{s.start, 1}, event{s.end, -1})
		sum += s.end.Sub(s.start)
	}
	// At the same instant an end comes first: touching spans do not overlap.
	slices.SortFunc(events, func(a, b event) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta
	})
	active := 0
	for i, e := range events {
		if i > 0 {
			d := e.at.Sub(events[i-1].at)
			if active >= 1 {
				union += d
			}
			if active >= 2 {
				two += d
			}
		}
		active += e.delta
	}
	return two, union, sum
}

func lastEnd(spans []span) time.Time {
	var t time.Time
	for _, s := range spans {
		if s.end.After(t) {
			t = s.end
		}
	}
	return t
}

// describe prints each span relative to t0, for the log.
func describe(spans []span, t0 time.Time) string {
	var parts []string
	for _, s := range spans {
		parts = append(parts, fmt.Sprintf("%s %.2fs-%.2fs", filepath.Base(s.path), s.start.Sub(t0).Seconds(), s.end.Sub(t0).Seconds()))
	}
	return strings.Join(parts, ", ")
}
