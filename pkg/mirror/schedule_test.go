package mirror_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	_ "time/tzdata" // the tests need Europe/Berlin on any machine

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"

	"github.com/containerdisk/kubectl-containerdisk/pkg/mirror"
)

func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

// kubeSchedules are cron schedules a CronJob may carry, and some it may not.
var kubeSchedules = []string{
	"*/15 * * * *", "30 3 * * *", "0 0 1 1 *", "59 23 31 12 *", "0 0 31 * *", "0 12 30 * *",
	"0 0 29 2 *", "0 6 28-31 2 *", "0 0 1,15 * 1", "0 0 13 * *", "0 0 * * 7", "0 0 * * 0",
	"0 0 * * SUN", "0 0 13 * fri", "0 9 * jan-mar mon-fri", "0 22 * * 1-5", "23 0-20/2 * * *",
	"0 0 * * 5/2", "5,10-12,50/5 * * * *", "0 0 1 */3 *", "  0  3  *  *  *  ",
	// Neither day field is "*" or "?": either matches, in both paths.
	"0 0 */2 * 1", "0 0 1-7 * mon",
	// "?" is "*".
	"0 0 ? * 1", "0 0 1 * ?",
	"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually", "@YEARLY",
	"@every 90m", "@every 1h30m10s", "* * * * *",
	// Refused by both.
	"", "* * * *", "* * * * * *", "61 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8",
	"* * * foo *", "* * * * monday", "*/0 * * * *", "5-1 * * * *", "x * * * *", "@reboot", "@every", "@every 1d",
	// The API server refuses TZ in a new CronJob's schedule.
	"CRON_TZ=UTC 0 3 * * *", "TZ=Europe/Berlin 0 3 * * *",
}

// TestParseCronMatchesKubernetes checks that the in-process schedule is the
// one a Kubernetes CronJob follows: ParseCron accepts what the API server's
// validation accepts (cron.ParseStandard, no "TZ"), its next runs are those
// of cron.ParseStandard from the same times, in UTC and across clock
// changes, and the CronJob printed for it carries the expression unchanged.
func TestParseCronMatchesKubernetes(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("no time zone data: %v", err)
	}
	froms := []time.Time{
		time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 2, 27, 13, 7, 30, 500, time.UTC),
		time.Date(2099, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2024, 3, 30, 22, 0, 0, 0, berlin),  // clocks go forward at 02:00 on the 31st
		time.Date(2024, 10, 26, 22, 0, 0, 0, berlin), // and back at 03:00 on the 27th
	}
	for _, spec := range kubeSchedules {
		t.Run(spec, func(t *testing.T) {
			kube, kubeErr := cron.ParseStandard(spec)
			if kubeErr == nil && strings.Contains(spec, "TZ") {
				kubeErr = errors.New("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
			}
			ours, err := mirror.ParseCron(spec)
			if (err == nil) != (kubeErr == nil) {
				t.Fatalf("ParseCron: %v; Kubernetes: %v", err, kubeErr)
			}
			if err != nil {
				return
			}
			for _, from := range froms {
				a, b := from, from
				for i := range 40 {
					a, b = ours.Next(a), kube.Next(b)
					if !a.Equal(b) || a.Location() != b.Location() {
						t.Fatalf("run %d after %s: in-process %s, CronJob %s", i+1, from, a, b)
					}
					if a.IsZero() {
						break
					}
				}
			}
			out, err := mirror.CronJobYAML(mirror.CronJobOptions{Image: "registry.local/kcd:1", Schedule: spec, Config: []byte(syncYAML)})
			if err != nil {
				t.Fatal(err)
			}
			var printed []string
			for _, obj := range decodeStream(t, out) {
				if cj, ok := obj.(*batchv1.CronJob); ok {
					printed = append(printed, cj.Spec.Schedule)
				}
			}
			if len(printed) != 1 || printed[0] != spec {
				t.Errorf("the CronJob carries %q, want [%q]", printed, spec)
			}
		})
	}
}

// TestParseCronEitherDay pins, on dates, the day rule a CronJob follows,
// which Vixie cron does not: "*/2" is no star, so the day of month or the
// day of week matches; "?" is "*". 2024-01-01 is a Monday.
func TestParseCronEitherDay(t *testing.T) {
	tests := []struct {
		spec string
		want []string
	}{
		{"0 0 */2 * 1", []string{"2024-01-03 00:00", "2024-01-05 00:00", "2024-01-07 00:00", "2024-01-08 00:00", "2024-01-09 00:00", "2024-01-11 00:00"}},
		{"0 0 ? * 1", []string{"2024-01-08 00:00", "2024-01-15 00:00"}},
		{"0 0 1,15 * 1", []string{"2024-01-08 00:00", "2024-01-15 00:00", "2024-01-22 00:00", "2024-01-29 00:00", "2024-02-01 00:00"}},
	}
	for _, tt := range tests {
		s, err := mirror.ParseCron(tt.spec)
		if err != nil {
			t.Errorf("ParseCron(%q): %v", tt.spec, err)
			continue
		}
		at := utc("2024-01-01 00:00")
		var got []string
		for range tt.want {
			at = s.Next(at)
			got = append(got, at.Format("2006-01-02 15:04"))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q: next runs\n got %q\nwant %q", tt.spec, got, tt.want)
		}
	}
}

func TestParseCronNextSeconds(t *testing.T) {
	s, err := mirror.ParseCron("* * * * *")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2024, 1, 1, 10, 20, 30, 500, time.UTC)
	if got, want := s.Next(from), time.Date(2024, 1, 1, 10, 21, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Next(%s) = %s, want %s", from, got, want)
	}
	// The location of the time given is the schedule's.
	zone := time.FixedZone("UTC+2", 2*60*60)
	s, err = mirror.ParseCron("0 3 * * *")
	if err != nil {
		t.Fatal(err)
	}
	got := s.Next(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).In(zone))
	if want := time.Date(2024, 1, 1, 3, 0, 0, 0, zone); !got.Equal(want) || got.Location() != zone {
		t.Errorf("Next in UTC+2 = %s, want %s", got, want)
	}
}

func TestParseCronDST(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("no time zone data: %v", err)
	}
	s, err := mirror.ParseCron("30 * * * *")
	if err != nil {
		t.Fatal(err)
	}
	// 2024-03-31 02:00 CET jumps to 03:00 CEST; 2024-10-27 03:00 CEST goes
	// back to 02:00 CET. Next always moves forward.
	for _, from := range []time.Time{
		time.Date(2024, 3, 31, 0, 0, 0, 0, berlin),
		time.Date(2024, 10, 27, 0, 0, 0, 0, berlin),
	} {
		at := from
		for range 6 {
			next := s.Next(at)
			if !next.After(at) || next.Minute() != 30 {
				t.Fatalf("Next(%s) = %s", at, next)
			}
			at = next
		}
	}
}

func TestParseCronErrors(t *testing.T) {
	tests := []struct {
		spec   string
		parser bool   // the error is robfig/cron's
		want   string // in the error
	}{
		{"", true, "empty spec string; expected five fields"},
		{"* * * *", true, "expected exactly 5 fields, found 4"},
		{"61 * * * *", true, "end of range (61) above maximum (59)"},
		{"* * * foo *", true, `failed to parse int from foo`},
		{"@reboot", true, "unrecognized descriptor: @reboot"},
		{"CRON_TZ=UTC 0 3 * * *", false, "TZ= and CRON_TZ= are refused by Kubernetes CronJobs"},
		{"0 0 30 2 *", false, "it never fires"},
		{"0 0 31 4,6,9,11 *", false, "it never fires"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			_, err := mirror.ParseCron(tt.spec)
			var ce *mirror.CronError
			if !errors.As(err, &ce) {
				t.Fatalf("ParseCron(%q) = %v, want a *CronError", tt.spec, err)
			}
			if (ce.Err != nil) != tt.parser || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseCron(%q) = %q (parser error %v), want %q", tt.spec, err, ce.Err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("cron schedule %q: ", tt.spec)) {
				t.Errorf("error %q does not start with the schedule", err)
			}
		})
	}
}

func TestParseInterval(t *testing.T) {
	s, err := mirror.ParseInterval("90m")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Next(utc("2024-01-01 00:00")), utc("2024-01-01 01:30"); !got.Equal(want) {
		t.Errorf("Next = %s, want %s", got, want)
	}
	for _, bad := range []string{"", "0", "0s", "-1h", "1d", "daily"} {
		if _, err := mirror.ParseInterval(bad); err == nil || !strings.Contains(err.Error(), "expected a positive duration") {
			t.Errorf("ParseInterval(%q) = %v, want an error", bad, err)
		}
	}
	if got := mirror.Every(0).Next(utc("2024-01-01 00:00")); !got.IsZero() {
		t.Errorf("Every(0).Next = %s, want never", got)
	}
}

// fakeClock is a clock for Run that moves only when told. Run in a synctest
// bubble, a test can wait for Run to be idle with synctest.Wait.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
	// afters records the durations asked of After.
	afters []time.Duration
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), ch: ch})
	c.afters = append(c.afters, d)
	return ch
}

// set moves the clock to t and fires the timers due.
func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	c.timers = slices.DeleteFunc(c.timers, func(tm fakeTimer) bool {
		if tm.at.After(t) {
			return false
		}
		tm.ch <- t
		return true
	})
}

// logger collects Run's log lines.
type logger struct {
	mu    sync.Mutex
	lines []string
}

func (l *logger) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logger) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// job is a job for Run that a test controls: each run reports its start and
// waits to be released.
type job struct {
	started  chan context.Context
	release  chan error
	runs     int
	blocking bool
}

func newJob(blocking bool) *job {
	return &job{started: make(chan context.Context, 10), release: make(chan error), blocking: blocking}
}

func (j *job) run(ctx context.Context) error {
	j.runs++
	j.started <- ctx
	if !j.blocking {
		return nil
	}
	return <-j.release
}

// runHarness runs Run in a goroutine of a synctest bubble.
type runHarness struct {
	clock  *fakeClock
	log    *logger
	cancel context.CancelFunc
	done   chan error
}

func startRun(t *testing.T, spec, at string, j *job, opts mirror.RunOptions) *runHarness {
	t.Helper()
	s, err := mirror.ParseCron(spec)
	if err != nil {
		t.Fatal(err)
	}
	h := &runHarness{clock: &fakeClock{now: utc(at)}, log: &logger{}, done: make(chan error, 1)}
	opts.Now, opts.After, opts.Log = h.clock.Now, h.clock.After, h.log.logf
	ctx, cancel := context.WithCancel(t.Context())
	h.cancel = cancel
	go func() { h.done <- mirror.Run(ctx, s, j.run, opts) }()
	synctest.Wait()
	return h
}

// advance moves the clock to at and waits for Run to be idle again.
func (h *runHarness) advance(at string) {
	h.clock.set(utc(at))
	synctest.Wait()
}

func TestRunTicks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := newJob(false)
		h := startRun(t, "*/10 * * * *", "2024-01-01 00:03", j, mirror.RunOptions{})
		if want := []time.Duration{7 * time.Minute}; !slices.Equal(h.clock.afters, want) {
			t.Fatalf("Run waits %v, want %v", h.clock.afters, want)
		}
		h.advance("2024-01-01 00:09")
		if j.runs != 0 {
			t.Fatalf("the job ran %d times before its time", j.runs)
		}
		h.advance("2024-01-01 00:10")
		h.advance("2024-01-01 00:20")
		if j.runs != 2 {
			t.Fatalf("the job ran %d times by 00:20, want 2", j.runs)
		}
		// A late timer (a suspended machine) runs once, not once per time
		// missed, and the next time is the schedule's.
		h.advance("2024-01-01 00:55")
		if j.runs != 3 {
			t.Fatalf("the job ran %d times by 00:55, want 3", j.runs)
		}
		if got, want := h.clock.afters[len(h.clock.afters)-1], 5*time.Minute; got != want {
			t.Errorf("after the late run Run waits %s, want %s", got, want)
		}
		h.cancel()
		if err := <-h.done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		if !strings.Contains(h.log.String(), "the run started at 2024-01-01T00:10:00Z finished") {
			t.Errorf("log:\n%s", h.log)
		}
	})
}

func TestRunSkipsWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := newJob(true)
		h := startRun(t, "*/10 * * * *", "2024-01-01 00:05", j, mirror.RunOptions{})
		h.advance("2024-01-01 00:10")
		if j.runs != 1 {
			t.Fatalf("the job ran %d times, want 1", j.runs)
		}
		// Still running at 00:20 and 00:30: both skipped.
		h.advance("2024-01-01 00:20")
		h.advance("2024-01-01 00:30")
		if j.runs != 1 {
			t.Fatalf("the job ran %d times while running, want 1", j.runs)
		}
		j.release <- errors.New("copy failed")
		synctest.Wait()
		h.advance("2024-01-01 00:40")
		if j.runs != 2 {
			t.Fatalf("the job ran %d times after the run ended, want 2", j.runs)
		}
		j.release <- nil
		synctest.Wait()
		h.cancel()
		if err := <-h.done; err != nil {
			t.Errorf("Run = %v", err)
		}
		log := h.log.String()
		for _, want := range []string{
			"skipping the run due at 2024-01-01T00:20:00Z: the run started at 2024-01-01T00:10:00Z is still going",
			"skipping the run due at 2024-01-01T00:30:00Z",
			"the run started at 2024-01-01T00:10:00Z failed: copy failed",
			"the run started at 2024-01-01T00:40:00Z finished",
		} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %q:\n%s", want, log)
			}
		}
	})
}

func TestRunStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := newJob(false)
		var jobErr error
		j2 := func(ctx context.Context) error {
			ctx2 := ctx
			j.started <- ctx2
			// The job copies image after image, checking between them.
			for range 3 {
				select {
				case <-mirror.Stopping(ctx):
					// Its context still works: the copy under way finishes.
					jobErr = ctx.Err()
					return nil
				case err := <-j.release:
					if err != nil {
						return err
					}
				}
			}
			return nil
		}
		s, _ := mirror.ParseCron("@hourly")
		clock := &fakeClock{now: utc("2024-01-01 00:30")}
		log := &logger{}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- mirror.Run(ctx, s, j2, mirror.RunOptions{Immediately: true, Now: clock.Now, After: clock.After, Log: log.logf})
		}()
		synctest.Wait()
		jobCtx := <-j.started
		j.release <- nil // one image copied
		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		default:
			t.Fatal("Run did not return after the job stopped")
		}
		if jobErr != nil {
			t.Errorf("the job's context was cancelled on stop: %v", jobErr)
		}
		if mirror.Stopping(jobCtx) == nil || mirror.Stopping(context.Background()) != nil {
			t.Error("Stopping is not set for the job only")
		}
		if !strings.Contains(log.String(), "stopping: waiting for the run started at 2024-01-01T00:30:00Z to finish") {
			t.Errorf("log:\n%s", log)
		}
	})
}

func TestRunStopIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := newJob(false)
		h := startRun(t, "@daily", "2024-01-01 00:30", j, mirror.RunOptions{})
		h.cancel()
		if err := <-h.done; err != nil || j.runs != 0 {
			t.Errorf("Run = %v after %d runs, want nil after none", err, j.runs)
		}
	})
}

func TestRunGraceAndAbort(t *testing.T) {
	for _, abort := range []bool{false, true} {
		t.Run(fmt.Sprintf("abort=%v", abort), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// A job that ignores Stopping and runs until cancelled.
				started := make(chan struct{}, 1)
				stubborn := func(ctx context.Context) error {
					started <- struct{}{}
					<-ctx.Done()
					return context.Cause(ctx)
				}
				s, _ := mirror.ParseCron("@hourly")
				clock := &fakeClock{now: utc("2024-01-01 00:30")}
				abortCh := make(chan struct{})
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() {
					done <- mirror.Run(ctx, s, stubborn, mirror.RunOptions{
						Grace: 10 * time.Minute, Abort: abortCh, Now: clock.Now, After: clock.After,
					})
				}()
				synctest.Wait()
				clock.set(utc("2024-01-01 01:00"))
				synctest.Wait()
				<-started
				cancel()
				synctest.Wait()
				clock.set(utc("2024-01-01 01:09"))
				synctest.Wait()
				select {
				case err := <-done:
					t.Fatalf("Run returned %v before the grace period ended", err)
				default:
				}
				if abort {
					close(abortCh)
				} else {
					clock.set(utc("2024-01-01 01:10"))
				}
				synctest.Wait()
				select {
				case err := <-done:
					if !errors.Is(err, mirror.ErrRunAborted) {
						t.Errorf("Run = %v, want ErrRunAborted", err)
					}
				default:
					t.Fatal("Run did not return")
				}
			})
		})
	}
}

// never is a schedule without a next time.
type never struct{}

func (never) Next(time.Time) time.Time { return time.Time{} }

func TestRunNever(t *testing.T) {
	err := mirror.Run(t.Context(), never{}, func(context.Context) error { return nil }, mirror.RunOptions{})
	if err == nil || !strings.Contains(err.Error(), "never fires") {
		t.Errorf("Run = %v, want an error", err)
	}
}
