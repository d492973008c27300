package mirror_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/containerdisk/kubectl-containerdisk/internal/testcluster"
	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
	"github.com/containerdisk/kubectl-containerdisk/internal/testregistry"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/mirror"
)

func TestMain(m *testing.M) {
	os.Setenv("OTEL_TRACES_EXPORTER", "none")
	os.Exit(m.Run())
}

// slowSource is a proxy in front of a registry that holds every blob GET
// until release is closed, and says when the first one arrives.
type slowSource struct {
	*httptest.Server
	started, release chan struct{}
	once             sync.Once
}

func newSlowSource(t *testing.T, reg *testregistry.Registry) *slowSource {
	u, _ := url.Parse("http://" + reg.Host)
	p := httputil.NewSingleHostReverseProxy(u)
	s := &slowSource{started: make(chan struct{}), release: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			s.once.Do(func() { close(s.started) })
			select {
			case <-s.release:
			case <-r.Context().Done():
				return
			}
		}
		p.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func stage(t *testing.T, reg *testregistry.Registry) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.qcow2")
	if err := testdisk.WriteQCOW2(p, 8<<20, 7, false); err != nil {
		t.Fatal(err)
	}
	repo, err := remote.NewRepository(reg.Host + "/containerdisks/fedora")
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	res, err := containerdisk.Build(context.Background(), repo, []containerdisk.Disk{{Architecture: "amd64", Path: p}}, containerdisk.Options{Created: time.Unix(0, 0), TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Tag(context.Background(), res.Root, "42"); err != nil {
		t.Fatal(err)
	}
}

func config(t *testing.T, src, dst string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sync.yaml")
	data := "units:\n- source: " + src + "/containerdisks\n  target: " + dst + "/mirror\n  images:\n  - {repository: fedora, tags: [\"42\"]}\n"
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(ctx context.Context, args ...string) (int, string) {
	var out, errOut bytes.Buffer
	code := cli.Run(ctx, cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, "kubectl containerdisk mirror", args, mirror.NewCommand)
	return code, out.String() + errOut.String()
}

func tagged(t *testing.T, host string) bool {
	t.Helper()
	repo, _ := remote.NewRepository(host + "/mirror/fedora")
	repo.PlainHTTP = true
	_, err := repo.Resolve(context.Background(), "42")
	return err == nil
}

// SIGTERM (the command's context ends) during a one-off sync stops the copy:
// nothing is tagged at the target, which stays consistent, and the next run
// completes.
func TestSigtermOnce(t *testing.T) {
	src, dst := testregistry.New(t), testregistry.New(t)
	stage(t, src)
	slow := newSlowSource(t, src)
	cfg := config(t, strings.TrimPrefix(slow.URL, "http://"), dst.Host)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int)
	go func() { code, _ := run(ctx, "-f", cfg); done <- code }()
	<-slow.started
	cancel()
	if code := <-done; code != cli.ExitInterrupted {
		t.Fatalf("exit %d, want %d", code, cli.ExitInterrupted)
	}
	if tagged(t, dst.Host) {
		t.Fatal("an interrupted copy was tagged")
	}
	close(slow.release)
	if code, out := run(t.Context(), "-f", cfg); code != 0 || !tagged(t, dst.Host) {
		t.Fatalf("the next run: exit %d\n%s", code, out)
	}
}

// SIGTERM to a scheduled mirror lets the copy under way finish, starts no
// other, and ends the process cleanly.
func TestSigtermScheduled(t *testing.T) {
	src, dst := testregistry.New(t), testregistry.New(t)
	stage(t, src)
	slow := newSlowSource(t, src)
	cfg := config(t, strings.TrimPrefix(slow.URL, "http://"), dst.Host)

	ctx, cancel := context.WithCancel(t.Context())
	type result struct {
		code int
		out  string
	}
	done := make(chan result)
	go func() { code, out := run(ctx, "-f", cfg, "--interval", "1h"); done <- result{code, out} }()
	<-slow.started
	cancel()
	time.Sleep(200 * time.Millisecond)
	close(slow.release)
	r := <-done
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.out)
	}
	if !tagged(t, dst.Host) {
		t.Fatalf("the copy under way at SIGTERM did not finish\n%s", r.out)
	}
}

// preload --from-cluster copies the containerDisk images the cluster's VMs
// use, read from a real API server with KubeVirt's CRDs.
func TestPreloadFromCluster(t *testing.T) {
	tc := testcluster.Start(t)
	ns := tc.Namespace(t)
	src, local := testregistry.New(t), testregistry.New(t)
	stage(t, src)
	image := src.Host + "/containerdisks/fedora:42"
	vm := &kubevirtv1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Name: "uses-fedora", Namespace: ns},
		Spec: kubevirtv1.VirtualMachineSpec{
			RunStrategy: ptr(kubevirtv1.RunStrategyHalted),
			Template: &kubevirtv1.VirtualMachineInstanceTemplateSpec{Spec: kubevirtv1.VirtualMachineInstanceSpec{
				Domain: kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{{Name: "root"}}}},
				Volumes: []kubevirtv1.Volume{{Name: "root", VolumeSource: kubevirtv1.VolumeSource{
					ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: image},
				}}},
			}},
		},
	}
	if _, err := tc.KubeVirt().KubevirtV1().VirtualMachines(ns).Create(t.Context(), vm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	args := []string{"preload", "--from-cluster", "--kubeconfig", tc.Kubeconfig(t), "-n", ns, "--to", local.Host + "/preload"}
	if code, out := run(t.Context(), args...); code != 0 || !strings.Contains(out, "Summary: 1 copied") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	repo, _ := remote.NewRepository(local.Host + "/preload/containerdisks/fedora")
	repo.PlainHTTP = true
	if _, err := repo.Resolve(t.Context(), "42"); err != nil {
		t.Fatalf("the cluster's image was not preloaded: %v", err)
	}
	if code, out := run(t.Context(), args...); code != 0 || !strings.Contains(out, "Summary: 0 copied, 1 up to date") {
		t.Fatalf("second preload: exit %d\n%s", code, out)
	}
}

func ptr[T any](v T) *T { return &v }
