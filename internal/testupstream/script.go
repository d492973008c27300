package testupstream

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

const scriptUsage = `usage:
  upstream                                 start serving $WORK/upstream; sets $UPSTREAM
  upstream publish DISTRO ARGS... [ARCH...] publish one build (see Publish)
  upstream curated                         publish a build of every curated version
  upstream fail PATH STATUS [N]            answer the next N requests for PATH with STATUS
  upstream truncate PATH BYTES [N]         send only BYTES of the next N bodies of PATH
  upstream stall PATH BYTES                send BYTES of the next body of PATH, then hang
  upstream corrupt PATH                    change a published file, keeping its checksum listed
  upstream requests                        print "requests N" and "disk-requests N"
  upstream reset                           set the request counts to zero
  upstream heal                            drop every pending fail, truncate and stall`

// ScriptCmd returns the testscript command `upstream`, for Params.Cmds: a
// fake upstream for every curated distribution, served on loopback, with
// each distribution under $UPSTREAM/NAME (so --mirror '*='$UPSTREAM reaches
// them all). See scriptUsage for its forms.
func ScriptCmd() func(ts *testscript.TestScript, neg bool, args []string) {
	var (
		mu    sync.Mutex
		sites = map[*testscript.TestScript]*Site{}
	)
	return func(ts *testscript.TestScript, neg bool, args []string) {
		if neg {
			ts.Fatalf("upstream cannot be negated with !\n%s", scriptUsage)
		}
		mu.Lock()
		s := sites[ts]
		mu.Unlock()
		if len(args) == 0 {
			if s != nil {
				ts.Fatalf("upstream already running at %s", s.URL())
			}
			s, err := New(filepath.Join(ts.Getenv("WORK"), "upstream"))
			ts.Check(err)
			u, err := s.Start()
			ts.Check(err)
			mu.Lock()
			sites[ts] = s
			mu.Unlock()
			ts.Defer(func() {
				mu.Lock()
				delete(sites, ts)
				mu.Unlock()
				s.Close()
			})
			ts.Setenv("UPSTREAM", u)
			return
		}
		if s == nil {
			ts.Fatalf("upstream is not running: start it with 'upstream' first")
		}
		count := func(i int) int {
			if len(args) <= i {
				return 1
			}
			n, err := strconv.Atoi(args[i])
			ts.Check(err)
			return n
		}
		switch args[0] {
		case "publish":
			if len(args) < 2 {
				ts.Fatalf("%s", scriptUsage)
			}
			ts.Check(s.Publish(args[1], args[2:]...))
		case "curated":
			ts.Check(s.PublishCurated(time.Now()))
		case "fail":
			if len(args) < 3 {
				ts.Fatalf("%s", scriptUsage)
			}
			status, err := strconv.Atoi(args[2])
			ts.Check(err)
			s.Fail(args[1], status, count(3))
		case "truncate":
			if len(args) < 3 {
				ts.Fatalf("%s", scriptUsage)
			}
			n, err := strconv.ParseInt(args[2], 10, 64)
			ts.Check(err)
			s.Truncate(args[1], n, count(3))
		case "stall":
			if len(args) != 3 {
				ts.Fatalf("%s", scriptUsage)
			}
			n, err := strconv.ParseInt(args[2], 10, 64)
			ts.Check(err)
			s.Stall(args[1], n)
		case "corrupt":
			if len(args) != 2 {
				ts.Fatalf("%s", scriptUsage)
			}
			p := filepath.Join(s.Dir, filepath.FromSlash(args[1]))
			data, err := os.ReadFile(p)
			ts.Check(err)
			data[len(data)-1] ^= 0xff
			ts.Check(os.WriteFile(p, data, 0o644))
		case "heal":
			s.Heal()
		case "reset":
			s.ResetRequests()
		case "requests":
			all, disks := s.TotalRequests()
			fmt.Fprintf(ts.Stdout(), "requests %d\ndisk-requests %d\n", all, disks)
		default:
			ts.Fatalf("%s", scriptUsage)
		}
	}
}

// Publish publishes one build of a distribution, by catalog name:
//
//	fedora VERSION BUILD [ARCH...]            (VERSION may be "43 Beta")
//	fedora-placeholder VERSION BUILD [ARCH...] (listed with no usable checksum)
//	centos-stream VERSION BUILD [ARCH...]     (BUILD like 20240101.0)
//	almalinux MAJOR MINOR DATE [ARCH...]      (9 9.6 20250522)
//	ubuntu VERSION SERIAL [ARCH...]           (24.04 20240423)
//	debian VERSION CODENAME BUILD [ARCH...]   (12 bookworm 20250210-2019)
//	opensuse-leap VERSION BUILD [ARCH...]     (15.6 16.35)
//	opensuse-tumbleweed SNAPSHOT [ARCH...]    (20240629)
//	opensuse-microos VERSION SNAPSHOT [ARCH...] (16.0.0 20240629)
func (s *Site) Publish(distro string, args ...string) error {
	need := func(n int) error {
		if len(args) < n {
			return fmt.Errorf("upstream publish %s: expected %d arguments before the architectures, got %q", distro, n, args)
		}
		return nil
	}
	switch distro {
	case "fedora":
		if err := need(2); err != nil {
			return err
		}
		return s.PublishFedora(args[0], args[1], args[2:]...)
	case "fedora-placeholder":
		if err := need(2); err != nil {
			return err
		}
		return s.PublishFedoraPlaceholder(args[0], args[1], args[2:]...)
	case "centos-stream":
		if err := need(2); err != nil {
			return err
		}
		return s.PublishCentOSStream(args[0], args[1], args[2:]...)
	case "almalinux":
		if err := need(3); err != nil {
			return err
		}
		return s.PublishAlmaLinux(args[0], args[1], args[2], args[3:]...)
	case "ubuntu":
		if err := need(2); err != nil {
			return err
		}
		return s.PublishUbuntu(args[0], args[1], args[2:]...)
	case "debian":
		if err := need(3); err != nil {
			return err
		}
		return s.PublishDebian(args[0], args[1], args[2], args[3:]...)
	case "opensuse-leap":
		if err := need(2); err != nil {
			return err
		}
		return s.PublishLeap(args[0], args[1], args[2:]...)
	case "opensuse-tumbleweed":
		if err := need(1); err != nil {
			return err
		}
		return s.PublishTumbleweed(args[0], args[1:]...)
	case "opensuse-microos":
		if err := need(2); err != nil {
			return err
		}
		return s.PublishMicroOS(args[0], args[1], args[2:]...)
	}
	return fmt.Errorf("upstream publish %q: unknown distribution", distro)
}

// CuratedBuilds are the builds PublishCurated publishes, as Publish
// arguments; Ubuntu's are added from the date (see ubuntuLTS).
var CuratedBuilds = [][]string{
	{"fedora", "41", "1.4"},
	{"fedora", "42", "1.1"},
	{"centos-stream", "9", "20240101.0"},
	{"centos-stream", "10", "20241118.0"},
	{"almalinux", "9", "9.6", "20250522"},
	{"almalinux", "10", "10.0", "20250528"},
	{"debian", "11", "bullseye", "20250210-2019"},
	{"debian", "12", "bookworm", "20250210-2019"},
	{"debian", "13", "trixie", "20250814-2204"},
	{"opensuse-leap", "15.6", "16.35"},
	{"opensuse-leap", "16.0", "1.2", "amd64", "arm64", "s390x"},
	{"opensuse-tumbleweed", "20240629"},
	{"opensuse-microos", "16.0.0", "20240629"},
}

// PublishCurated publishes a build of every curated version: the
// CuratedBuilds and the two Ubuntu LTS releases current at now (Ubuntu's
// end-of-life rule is evaluated against the clock).
func (s *Site) PublishCurated(now time.Time) error {
	builds := CuratedBuilds
	for _, v := range ubuntuLTS(now) {
		builds = append(builds, []string{"ubuntu", v, "20250101"})
	}
	for _, b := range builds {
		if err := s.Publish(b[0], b[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// ubuntuLTS returns the two newest LTS versions released by now ("YY.04",
// every even year, out in April).
func ubuntuLTS(now time.Time) []string {
	y := now.Year()
	if y%2 == 1 || now.Month() < time.May {
		y--
	}
	if y%2 == 1 {
		y--
	}
	return []string{fmt.Sprintf("%02d.04", (y-2)%100), fmt.Sprintf("%02d.04", y%100)}
}
