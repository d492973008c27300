// Package testscripts runs the scripts in this directory: each is a worked
// example of the tool, run against real servers, and a test.
package testscripts

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
	"github.com/containerdisk/kubectl-containerdisk/internal/testregistry"
	"github.com/containerdisk/kubectl-containerdisk/internal/teststall"
	"github.com/containerdisk/kubectl-containerdisk/internal/testupstream"
	"github.com/containerdisk/kubectl-containerdisk/plugins/build"
	"github.com/containerdisk/kubectl-containerdisk/plugins/dispatch"
	"github.com/containerdisk/kubectl-containerdisk/plugins/docs"
	"github.com/containerdisk/kubectl-containerdisk/plugins/gather"
	"github.com/containerdisk/kubectl-containerdisk/plugins/mirror"
	"github.com/containerdisk/kubectl-containerdisk/plugins/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/plugins/push"
	"github.com/containerdisk/kubectl-containerdisk/plugins/verify"
)

func TestMain(m *testing.M) {
	os.Setenv("OTEL_TRACES_EXPORTER", "none")
	sub := func(main func() int) func() {
		return func() { os.Exit(main()) }
	}
	testscript.Main(m, map[string]func(){
		"kubectl-containerdisk":          sub(dispatch.Main),
		"kubectl-containerdisk-build":    sub(build.Main),
		"kubectl-containerdisk-push":     sub(push.Main),
		"kubectl-containerdisk-pipeline": sub(pipeline.Main),
		"kubectl-containerdisk-gather":   sub(gather.Main),
		"kubectl-containerdisk-verify":   sub(verify.Main),
		"kubectl-containerdisk-mirror":   sub(mirror.Main),
		"kubectl-containerdisk-docs":     sub(docs.Main),
	})
}

func TestScripts(t *testing.T) {
	bootdisk := bootDisk(t)
	guestdisk := guestDisk(t, "amd64")
	testscript.Run(t, testscript.Params{
		Dir:                 ".",
		RequireExplicitExec: true,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"registry":        testregistry.ScriptCmd(),
			"upstream":        testupstream.ScriptCmd(),
			"mkdisk":          mkdisk,
			"exits":           exits,
			"debian-registry": debianRegistry,
			"containerd":      containerd,
			"faultproxy":      faultProxy,
			"stallserver":     teststall.ScriptCmd(),
			"peers":           peers,
		},
		Setup: func(env *testscript.Env) error {
			env.Setenv("OTEL_TRACES_EXPORTER", "none")
			// The creation time of every image comes from here, so the
			// digests in the scripts are the same on every run.
			env.Setenv("SOURCE_DATE_EPOCH", "1714564800")
			// A small real bootable disk, for verify --local.
			env.Setenv("BOOTDISK", bootdisk)
			// A small guest disk that libguestfs inspects, for customize.
			env.Setenv("GUESTDISK", guestdisk)
			// How the libguestfs appliance starts on this machine (TCG
			// where KVM aborts), and its kernel when it is not in /boot.
			for _, v := range os.Environ() {
				if k, val, _ := strings.Cut(v, "="); strings.HasPrefix(k, "LIBGUESTFS_") || strings.HasPrefix(k, "SUPERMIN_") {
					env.Setenv(k, val)
				}
			}
			return nil
		},
	})
}

// bootDisk returns the amd64 disk hack/bootdisk.sh builds (at once from its
// cache on a warm machine), or $CONTAINERDISK_BOOTDISK.
func bootDisk(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CONTAINERDISK_BOOTDISK"); p != "" {
		return p
	}
	var stderr bytes.Buffer
	cmd := exec.Command("../hack/bootdisk.sh", "amd64")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hack/bootdisk.sh amd64 (the boot disk of the verify --local scripts): %v\n%s", err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// guestDisk returns the guest disk of arch (testdisk.GuestDisk).
func guestDisk(t *testing.T, arch string) string {
	t.Helper()
	p, err := testdisk.GuestDisk(arch)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// peerPath is the PATH list of the peer tools' directories, built once
// per test binary.
var peerPath = sync.OnceValues(func() (string, error) {
	if p := os.Getenv("CONTAINERDISK_PEERS"); p != "" {
		return p, nil
	}
	var stderr bytes.Buffer
	cmd := exec.Command("../hack/peers.sh")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/peers.sh: %v\n%s", err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out)), nil
})

// peers puts crane, oras and regctl, at the versions hack/peers.sh pins
// (built on first use and cached), first on the script's PATH, or the
// directories $CONTAINERDISK_PEERS lists:
//
//	peers
func peers(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: peers")
	}
	path, err := peerPath()
	ts.Check(err)
	ts.Setenv("PATH", path+string(os.PathListSeparator)+ts.Getenv("PATH"))
}

// debianRegistry starts Debian's docker-registry (distribution 2.8, a
// registry built apart from this project) on a loopback port, storing under
// $WORK/.debian-registry, sets $DEBIAN_REGISTRY to its host and stops it
// when the script ends:
//
//	debian-registry
func debianRegistry(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: debian-registry")
	}
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		ts.Fatalf("Debian's docker-registry is needed: install it with 'apt-get install docker-registry': %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	addr := ln.Addr().String()
	ln.Close()
	dir := ts.MkAbs(".debian-registry")
	ts.Check(os.MkdirAll(dir, 0o755))
	cfg := filepath.Join(dir, "config.yml")
	ts.Check(os.WriteFile(cfg, []byte("version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: "+filepath.Join(dir, "data")+"}, delete: {enabled: true}}\nhttp: {addr: "+addr+"}\n"), 0o644))
	startDaemon(ts, "docker-registry on "+addr, exec.Command(bin, "serve", cfg), func() bool {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, nil)
	ts.Setenv("DEBIAN_REGISTRY", addr)
}

// containerd starts Debian's containerd with its state under
// $WORK/.containerd (no CRI, nothing else touched), sets
// $CONTAINERD_ADDRESS to its socket and stops it when the script ends. It
// needs root, as containerd does:
//
//	containerd
func containerd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: containerd")
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		ts.Fatalf("containerd is needed: install it with 'apt-get install containerd': %v", err)
	}
	// A unix socket path must be short: keep it out of $WORK.
	dir, err := os.MkdirTemp("", "ctr-")
	ts.Check(err)
	sock := filepath.Join(dir, "c.sock")
	cfg := filepath.Join(dir, "config.toml")
	ts.Check(os.WriteFile(cfg, []byte(fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n", filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock)), 0o644))
	startDaemon(ts, "containerd", exec.Command(bin, "--config", cfg), func() bool {
		_, err := os.Stat(sock)
		return err == nil
	}, func() { os.RemoveAll(dir) })
	ts.Setenv("CONTAINERD_ADDRESS", sock)
}

// startDaemon starts cmd for the rest of the script, waits up to 5 s until
// ready says it serves, and at the script's end kills it and runs cleanup.
func startDaemon(ts *testscript.TestScript, what string, cmd *exec.Cmd, ready func() bool, cleanup func()) {
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	ts.Check(cmd.Start())
	ts.Defer(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if cleanup != nil {
			cleanup()
		}
	})
	for i := 0; !ready(); i++ {
		if i == 100 {
			ts.Fatalf("%s did not start:\n%s", what, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// faultProxy starts a proxy on loopback in front of a registry that
// misbehaves, sets $PROXY_NAME (upper case) to its host, and stops it when
// the script ends:
//
//	faultproxy NAME HOST 429 N   answer the first N requests 429 (Retry-After: 1)
//	faultproxy NAME HOST reset   cut the first download of a blob of 64 KiB or more halfway, resetting the connection
//	faultproxy NAME HOST corrupt flip a byte in every blob download
//	faultproxy NAME HOST cutupload  drop the first blob upload request of 64 KiB or more halfway through its body
func faultProxy(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: faultproxy NAME HOST 429 N | reset | corrupt | cutupload")
	}
	name, host, mode := args[0], args[1], args[2]
	n := 0
	if mode == "429" {
		if len(args) != 4 {
			ts.Fatalf("usage: faultproxy NAME HOST 429 N")
		}
		var err error
		n, err = strconv.Atoi(args[3])
		ts.Check(err)
	}
	u, err := url.Parse("http://" + host)
	ts.Check(err)
	proxy := httputil.NewSingleHostReverseProxy(u)
	// A request that fails on its way to the registry drops the client's
	// connection, as a network failure would.
	proxy.ErrorHandler = func(http.ResponseWriter, *http.Request, error) { panic(http.ErrAbortHandler) }
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	var mu sync.Mutex
	seen, cut := 0, false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		blob := r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:")
		mu.Lock()
		seen++
		tooMany := mode == "429" && seen <= n
		doCut := mode == "reset" && blob && !cut
		upload := (r.Method == http.MethodPatch || r.Method == http.MethodPut) &&
			strings.Contains(r.URL.Path, "/blobs/uploads/") && r.ContentLength >= 64<<10
		cutUpload := mode == "cutupload" && upload && !cut
		cut = cut || cutUpload
		mu.Unlock()
		switch {
		case cutUpload:
			half := r.ContentLength / 2
			ts.Logf("faultproxy %s: cut %s %s at byte %d of %d", name, r.Method, r.URL.Path, half, r.ContentLength)
			r.Body = testregistry.CutAfter(r.Body, half)
			proxy.ServeHTTP(w, r)
		case tooMany:
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`, http.StatusTooManyRequests)
		case doCut || (mode == "corrupt" && blob):
			rec := httptest.NewRecorder()
			proxy.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			if mode == "corrupt" {
				if len(body) > 0 {
					body[len(body)/2] ^= 0xff
				}
				w.WriteHeader(rec.Code)
				w.Write(body)
				return
			}
			mu.Lock()
			small := len(body) < 64<<10 || cut
			cut = cut || !small
			mu.Unlock()
			if small {
				// Only a layer is cut: a config is too small to resume.
				w.WriteHeader(rec.Code)
				w.Write(body)
				return
			}
			ts.Logf("faultproxy %s: cut %s at byte %d of %d", name, r.URL.Path, len(body)/2, len(body))
			w.WriteHeader(rec.Code)
			w.Write(body[:len(body)/2])
			if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0) // a reset, not a clean close
				}
				c.Close()
			}
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	ts.Defer(srv.Close)
	ts.Setenv("PROXY_"+strings.ToUpper(name), strings.TrimPrefix(srv.URL, "http://"))
}

// exits runs a program like exec and checks its exit code:
//
//	exits CODE PROG [ARGS...]
//
// The program's stdout and stderr are kept for stdout and stderr checks.
func exits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			ts.Fatalf("running %s: %v", args[1], err)
		}
		got = exit.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

// mkdisk makes test disks:
//
//	mkdisk raw FILE SIZE         a raw disk with an MBR
//	mkdisk qcow2 FILE SIZE       a qcow2 converted by qemu-img
//	mkdisk overlay FILE BASE     a qcow2 whose backing file is BASE
//
// SIZE is in bytes or with a K or M suffix; each kind of disk gets content
// that depends on FILE's name only, so builds are repeatable.
func mkdisk(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: mkdisk raw|qcow2 FILE SIZE | mkdisk overlay FILE BASE")
	}
	path := ts.MkAbs(args[1])
	seed := uint64(len(filepath.Base(path)))
	var err error
	switch args[0] {
	case "raw":
		err = testdisk.WriteRaw(path, parseSize(ts, args[2]), seed)
	case "qcow2":
		err = testdisk.WriteQCOW2(path, parseSize(ts, args[2]), seed, false)
	case "overlay":
		err = testdisk.WriteOverlay(path, ts.MkAbs(args[2]))
	default:
		err = fmt.Errorf("unknown disk kind %q", args[0])
	}
	ts.Check(err)
}

func parseSize(ts *testscript.TestScript, s string) int64 {
	mult := int64(1)
	switch s[len(s)-1] {
	case 'K':
		mult, s = 1<<10, s[:len(s)-1]
	case 'M':
		mult, s = 1<<20, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	ts.Check(err)
	return n * mult
}
