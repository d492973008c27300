package mirror

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule says when a recurring mirror runs.
type Schedule interface {
	// Next returns the first time strictly after t at which the schedule
	// fires, in t's location, or the zero time if it never does.
	Next(t time.Time) time.Time
}

// interval is a Schedule that fires at a fixed interval.
type interval time.Duration

// ParseInterval parses a fixed interval between runs, a Go duration such as
// "30m" or "6h". Its Next is t plus the interval, so under [Run] the runs
// keep to the interval from the first one's start, however long each takes.
func ParseInterval(s string) (Schedule, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d <= 0 {
		return nil, fmt.Errorf("interval %q: expected a positive duration such as 30m, 6h or 24h", s)
	}
	return interval(d), nil
}

// Every is the Schedule of a fixed interval d, as ParseInterval parses it,
// for a duration read already (Config.Interval). With d zero or negative it
// never fires.
func Every(d time.Duration) Schedule {
	return interval(d)
}

func (i interval) Next(t time.Time) time.Time {
	if i <= 0 {
		return time.Time{}
	}
	return t.Add(time.Duration(i))
}

// String returns the interval as a Go duration.
func (i interval) String() string { return time.Duration(i).String() }

// CronError reports a cron expression that cannot be used.
type CronError struct {
	// Spec is the expression as given.
	Spec   string
	Reason string
	// Err is the parser's error, if the parser refused the expression.
	Err error
}

func (e *CronError) Error() string {
	return fmt.Sprintf("cron schedule %q: %s", e.Spec, e.Reason)
}

// Unwrap returns the parser's error.
func (e *CronError) Unwrap() error { return e.Err }

// cronSyntax is what a cron expression looks like, for errors.
const cronSyntax = `expected five fields "minute hour day-of-month month day-of-week" such as "30 3 * * *" (daily at 03:30), or one of @hourly, @daily, @weekly, @monthly, @yearly or @every DURATION, as a Kubernetes CronJob takes them`

// ParseCron parses a cron schedule as a Kubernetes CronJob reads its
// spec.schedule: with github.com/robfig/cron/v3's ParseStandard, which the
// API server's validation and the CronJob controller both call. That is
// five fields (minute, hour, day of month, month, day of week; names such
// as jan or mon, "?" as "*", ranges, lists and steps) or a descriptor
// (@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly,
// @every DURATION). When neither day field is "*" or "?" a day matches if
// either does, so "0 0 */2 * 1" fires on odd days of the month and on
// Mondays, as the CronJob it prints does (Vixie cron would take "*/2" as a
// star and fire on odd Mondays only).
//
// As the API server does for a new CronJob since Kubernetes 1.25, ParseCron
// refuses "TZ=" and "CRON_TZ=" prefixes (anything with "TZ"): a CronJob
// takes its time zone from spec.timeZone. It also refuses a schedule that
// never fires, such as "0 0 30 2 *", which Kubernetes accepts and never
// runs.
//
// Times are those of the local time zone, as for a CronJob without
// spec.timeZone, whose times are the controller manager's: when clocks go
// forward, the times skipped do not come; when they go back, the times of
// the repeated hour come once.
func ParseCron(spec string) (Schedule, error) {
	if strings.Contains(spec, "TZ") {
		return nil, &CronError{Spec: spec, Reason: "TZ= and CRON_TZ= are refused by Kubernetes CronJobs: leave the prefix out (the schedule is in local time, or in the CronJob's spec.timeZone)"}
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, &CronError{Spec: spec, Reason: err.Error() + "; " + cronSyntax, Err: err}
	}
	// robfig/cron looks five years ahead, which covers February 29th.
	if s.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, &CronError{Spec: spec, Reason: "it never fires: no date has a day of month and month it allows"}
	}
	return cronSchedule{s, spec}, nil
}

// cronSchedule is a parsed cron expression that prints as it was given.
type cronSchedule struct {
	cron.Schedule
	spec string
}

// String returns the expression as given.
func (c cronSchedule) String() string { return c.spec }

// RunOptions configures [Run].
type RunOptions struct {
	// Immediately runs the job once as Run starts, besides the schedule.
	Immediately bool
	// Grace bounds how long a run may go on once Run is stopping: then the
	// job's context is cancelled. Zero waits for the run however long it
	// takes.
	Grace time.Duration
	// Abort, when closed, cancels the job's context at once and stops Run,
	// as for a second interrupt.
	Abort <-chan struct{}
	// Log, when set, is told of each run that ends, of skipped runs, and of
	// the stop.
	Log func(format string, args ...any)

	// Now and After are the clock, time.Now and time.After when nil.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
}

// ErrRunAborted is matched (errors.Is) by the error of a [Run] whose last
// run was cancelled: by [RunOptions].Abort or at the end of the grace period.
var ErrRunAborted = errors.New("the run was cancelled before it finished")

// stoppingKey is the context key of the channel Stopping returns.
type stoppingKey struct{}

// Stopping returns a channel that is closed when the [Run] that started the
// job with ctx begins to stop. A job checks it between units of work, such
// as images, and returns early, leaving no copy half-done: its context is
// not cancelled when Run's is. For a context that did not come from Run it
// returns nil, a channel that is never closed.
func Stopping(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(stoppingKey{}).(<-chan struct{})
	return ch
}

// Run runs job at each time s gives, until ctx is done: a long-lived mirror.
// A time that comes while the previous run is still going is skipped (and
// logged), never queued, and times missed (a suspended machine) are not
// made up for. A failed run is logged and does not stop Run. That is
// robfig/cron's SkipIfStillRunning, and a CronJob's concurrencyPolicy
// Forbid; Run does not use cron.Cron itself, which has neither a run at
// start, nor a way to tell a job to stop between images, nor a grace period,
// nor a clock a test can drive.
//
// When ctx is done (SIGTERM), Run closes the channel [Stopping] returns
// for the job's context, and waits for the current run to return: the
// job's context is not cancelled then, so a copy under way finishes,
// and the job stops between images. Only at the end of opts.Grace, or when
// opts.Abort closes, is the job's context cancelled. Run returns nil when
// it stopped without cancelling a run, an error matching [ErrRunAborted]
// when it had to, and an error when s never fires.
func Run(ctx context.Context, s Schedule, job func(ctx context.Context) error, opts RunOptions) error {
	now, after, logf := opts.Now, opts.After, opts.Log
	if now == nil {
		now = time.Now
	}
	if after == nil {
		after = time.After
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	stopping := make(chan struct{})
	jobCtx, cancelJob := context.WithCancelCause(context.WithValue(context.WithoutCancel(ctx), stoppingKey{}, (<-chan struct{})(stopping)))
	defer cancelJob(nil)

	r := &runner{job: job, ctx: jobCtx, now: now, logf: logf}
	if opts.Immediately {
		r.start(now())
	}
	next := s.Next(now())
	var tick <-chan time.Time
	if !next.IsZero() {
		tick = after(next.Sub(now()))
	}
	for tick != nil {
		select {
		case <-ctx.Done():
			close(stopping)
			return r.stop(opts, after, cancelJob)
		case <-opts.Abort:
			close(stopping)
			return r.stop(opts, after, cancelJob)
		case err := <-r.done:
			r.finish(err)
		case <-tick:
			at := now()
			// A timer that fires early must not bring the same time again.
			if at.Before(next) {
				at = next
			}
			if r.done != nil {
				logf("skipping the run due at %s: the run started at %s is still going", fmtTime(next), fmtTime(r.started))
			} else {
				r.start(at)
			}
			if next = s.Next(at); next.IsZero() {
				tick = nil
			} else {
				tick = after(next.Sub(now()))
			}
		}
	}
	// The schedule has no time left.
	close(stopping)
	if err := r.stop(opts, after, cancelJob); err != nil {
		return err
	}
	return fmt.Errorf("the schedule %v never fires after %s", s, fmtTime(now()))
}

// runner keeps track of the run under way.
type runner struct {
	job     func(ctx context.Context) error
	ctx     context.Context
	now     func() time.Time
	logf    func(format string, args ...any)
	done    chan error // nil when no run is going
	started time.Time
}

func (r *runner) start(at time.Time) {
	r.done, r.started = make(chan error, 1), at
	go func() { r.done <- r.job(r.ctx) }()
}

func (r *runner) finish(err error) {
	r.done = nil
	if err != nil {
		r.logf("the run started at %s failed: %v", fmtTime(r.started), err)
	} else {
		r.logf("the run started at %s finished in %s", fmtTime(r.started), r.now().Sub(r.started).Round(time.Second))
	}
}

// stop waits for the run under way, cancelling it at the end of the grace
// period or on Abort.
func (r *runner) stop(opts RunOptions, after func(time.Duration) <-chan time.Time, cancel context.CancelCauseFunc) error {
	if r.done == nil {
		return nil
	}
	r.logf("stopping: waiting for the run started at %s to finish", fmtTime(r.started))
	var grace <-chan time.Time
	if opts.Grace > 0 {
		grace = after(opts.Grace)
	}
	abort := opts.Abort
	var cause error
	for {
		select {
		case err := <-r.done:
			started := r.started
			r.finish(err)
			if cause != nil {
				return fmt.Errorf("stopping: the run started at %s was cancelled: %w", fmtTime(started), cause)
			}
			return nil
		case <-grace:
			grace = nil
			if cause == nil {
				cause = fmt.Errorf("%w within the grace period of %s", ErrRunAborted, opts.Grace)
				r.logf("stopping: cancelling the run started at %s: it did not finish within %s", fmtTime(r.started), opts.Grace)
				cancel(cause)
			}
		case <-abort:
			abort = nil
			if cause == nil {
				cause = fmt.Errorf("%w: aborted", ErrRunAborted)
				r.logf("stopping: cancelling the run started at %s", fmtTime(r.started))
				cancel(cause)
			}
		}
	}
}

func fmtTime(t time.Time) string { return t.Format(time.RFC3339) }
