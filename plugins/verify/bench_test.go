package verify_test

// BenchmarkVerifyLocal4 boots 4 containerdisks of the test boot disk
// (hack/bootdisk.sh) under QEMU with verify --local, at --workers 1 and then
// 2, and reports both wall times and their ratio. It fails when a boot
// fails or takes 30 s or more. Run it with
//
//	go test ./plugins/verify -run '^$' -bench VerifyLocal4 -benchtime 1x

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"oras.land/oras-go/v2/content/oci"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/verify"
)

func bootDisk(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("CONTAINERDISK_BOOTDISK"); p != "" {
		return p
	}
	out, err := exec.Command("../../hack/bootdisk.sh", "amd64").Output()
	if err != nil {
		tb.Fatalf("hack/bootdisk.sh amd64: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func BenchmarkVerifyLocal4(b *testing.B) {
	disk := bootDisk(b)
	dir := b.TempDir()
	store, err := oci.New(dir)
	if err != nil {
		b.Fatal(err)
	}
	var images []string
	for i := range 4 {
		version := fmt.Sprint(i + 1)
		res, err := containerdisk.Build(context.Background(), store, []containerdisk.Disk{{Architecture: "amd64", Path: disk}},
			containerdisk.Options{Version: version, Created: time.Unix(0, 0), TempDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		if err := store.Tag(context.Background(), res.Root, version); err != nil {
			b.Fatal(err)
		}
		images = append(images, "oci:"+dir+":"+version)
	}
	run := func(workers int) (wall, slowest time.Duration) {
		var out, errOut bytes.Buffer
		args := append([]string{"--local", "--workers", fmt.Sprint(workers), "--timeout", "2m", "-o", "json"}, images...)
		start := time.Now()
		code := cli.Run(context.Background(), cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, "kubectl containerdisk verify", args, verify.NewCommand)
		wall = time.Since(start)
		if code != 0 {
			b.Fatalf("--workers %d: exit %d\n%s", workers, code, errOut.String())
		}
		err := pipeline.Decode(&out, func(r pipeline.Record, invalid error) error {
			if invalid != nil {
				return invalid
			}
			for _, v := range r.Verify.Results {
				for _, c := range v.Checks {
					d := time.Duration(c.Seconds * float64(time.Second))
					if c.Name == "boot" && d >= 30*time.Second {
						return fmt.Errorf("%s booted in %v, the limit is 30s", r.Reference, d)
					}
					slowest = max(slowest, d)
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		return wall, slowest
	}
	for b.Loop() {
		one, boot1 := run(1)
		two, boot2 := run(2)
		b.ReportMetric(one.Seconds(), "s-1-worker")
		b.ReportMetric(two.Seconds(), "s-2-workers")
		b.ReportMetric(one.Seconds()/two.Seconds(), "speedup")
		b.ReportMetric(max(boot1, boot2).Seconds(), "s-slowest-boot")
	}
}
