package mirror

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
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
	Spec string
	// Field names the field at fault ("minute", "hour", "day of month",
	// "month", "day of week"); empty when the fault is the whole expression's.
	Field string
	// Value is the text of the field at fault.
	Value  string
	Reason string
}

func (e *CronError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("cron schedule %q: %s", e.Spec, e.Reason)
	}
	return fmt.Sprintf("cron schedule %q: %s field %q: %s", e.Spec, e.Field, e.Value, e.Reason)
}

// cronSyntax is what a cron expression looks like, for errors.
const cronSyntax = `expected five fields "minute hour day-of-month month day-of-week" such as "30 3 * * *" (daily at 03:30), or one of @hourly, @daily, @weekly, @monthly, @yearly`

// cronShorthands are the shorthands ParseCron accepts, as Vixie cron does.
var cronShorthands = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// cronFieldSpec is the range and the names of one field.
type cronFieldSpec struct {
	name     string
	min, max int
	names    []string // names[i] stands for min+i
}

var cronFieldSpecs = [5]cronFieldSpec{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	// 7 is Sunday too.
	{name: "day of week", min: 0, max: 7, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// cronSchedule is a parsed cron expression: a bit set of the values each field
// allows.
type cronSchedule struct {
	spec                        string
	minute, hour, dom, mon, dow uint64
	// domStar and dowStar say that the field starts with "*": as in Vixie
	// cron, the day then has to match both day fields, and otherwise
	// either.
	domStar, dowStar bool
}

// ParseCron parses a standard five-field cron expression: minute (0-59),
// hour (0-23), day of month (1-31), month (1-12 or jan-dec) and day of week
// (0-7 or sun-sat, 0 and 7 being Sunday), each a comma-separated list of
// "*", a value, a range "a-b", each optionally followed by a step "/n"
// ("a/n" meaning "a-max/n"), names case-insensitive; or one of @yearly
// (@annually), @monthly, @weekly, @daily (@midnight) and @hourly.
//
// As in Vixie cron, when neither day field starts with "*" a day matches if
// either does ("0 0 1,15 * 1" fires on the 1st, the 15th and every Monday),
// and otherwise it has to match both: "0 0 */2 * 1" fires on Mondays with an
// odd day of month. (Kubernetes CronJobs, whose library takes "*/2" as no
// star, would fire that one on odd days and on Mondays.)
//
// Times are those of the location of the time given to Next: when clocks go
// forward, the times skipped do not come; when they go back, the times of
// the repeated hour may come twice. UTC has neither.
func ParseCron(spec string) (Schedule, error) {
	s := strings.TrimSpace(spec)
	if strings.HasPrefix(s, "@") {
		expanded, ok := cronShorthands[strings.ToLower(s)]
		if !ok {
			return nil, &CronError{Spec: spec, Reason: fmt.Sprintf("%s is not a schedule ParseCron knows; %s", s, cronSyntax)}
		}
		s = expanded
	}
	fields := strings.Fields(s)
	if len(fields) != len(cronFieldSpecs) {
		return nil, &CronError{Spec: spec, Reason: fmt.Sprintf("it has %d fields; %s", len(fields), cronSyntax)}
	}
	c := &cronSchedule{spec: spec}
	sets := [5]*uint64{&c.minute, &c.hour, &c.dom, &c.mon, &c.dow}
	for i, f := range cronFieldSpecs {
		set, err := f.parse(fields[i])
		if err != nil {
			return nil, &CronError{Spec: spec, Field: f.name, Value: fields[i], Reason: err.Error()}
		}
		*sets[i] = set
	}
	if c.dow&(1<<7) != 0 {
		c.dow = c.dow&^(1<<7) | 1
	}
	c.domStar = strings.HasPrefix(fields[2], "*")
	c.dowStar = strings.HasPrefix(fields[4], "*")
	// Some expressions never fire, such as "0 0 30 2 *". Every day of month
	// comes in every month within 8 years from 2000 (a leap year).
	if c.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, &CronError{Spec: spec, Reason: "it never fires: no date has a day of month, month and day of week it allows"}
	}
	return c, nil
}

// parse parses one field into a bit set.
func (f cronFieldSpec) parse(text string) (uint64, error) {
	var set uint64
	for elem := range strings.SplitSeq(text, ",") {
		rng, stepText, hasStep := strings.Cut(elem, "/")
		lo, hi := f.min, f.max
		switch {
		case rng == "*":
		case rng == "":
			return 0, fmt.Errorf("%q has an empty element; expected a value, a range a-b or *", text)
		default:
			loText, hiText, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = f.value(loText); err != nil {
				return 0, err
			}
			switch {
			case isRange:
				if hi, err = f.value(hiText); err != nil {
					return 0, err
				}
				if hi < lo {
					return 0, fmt.Errorf("the range %s goes backwards", rng)
				}
			case !hasStep:
				hi = lo
			}
		}
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("step %q is not a positive number", stepText)
			}
			step = n
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << v
		}
	}
	return set, nil
}

// value parses a number or a name of the field.
func (f cronFieldSpec) value(s string) (int, error) {
	for i, name := range f.names {
		if strings.EqualFold(s, name) {
			return f.min + i, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		if f.names != nil {
			return 0, fmt.Errorf("%q is neither a number from %d to %d nor a name (%s-%s)", s, f.min, f.max, f.names[0], f.names[len(f.names)-1])
		}
		return 0, fmt.Errorf("%q is not a number from %d to %d", s, f.min, f.max)
	}
	if n < f.min || n > f.max {
		return 0, fmt.Errorf("%d is out of range %d-%d", n, f.min, f.max)
	}
	return n, nil
}

// cronSearchYears bounds the search of Next: the rarest dates that come at all,
// such as February 29th on a Monday, come every 40 years at most.
const cronSearchYears = 50

// Next returns the first time after t, to the minute, that the expression
// allows.
func (c *cronSchedule) Next(t time.Time) time.Time {
	loc := t.Location()
	// The next whole minute.
	t = t.Add(time.Minute - time.Duration(t.Second())*time.Second - time.Duration(t.Nanosecond()))
	limit := t.Year() + cronSearchYears
	for t.Year() <= limit {
		if c.mon&(1<<int(t.Month())) == 0 {
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, loc)
			continue
		}
		if !c.dayMatches(t) {
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
			continue
		}
		if c.hour&(1<<t.Hour()) == 0 {
			// Added, not made with time.Date, so that a repeated hour (clocks
			// going back) never sends t backwards.
			t = t.Add(time.Hour - time.Duration(t.Minute())*time.Minute)
			continue
		}
		if c.minute&(1<<t.Minute()) == 0 {
			// Straight to the next allowed minute of the hour, or the next hour.
			rest := c.minute >> t.Minute()
			if rest == 0 {
				t = t.Add(time.Duration(60-t.Minute()) * time.Minute)
			} else {
				t = t.Add(time.Duration(bits.TrailingZeros64(rest)) * time.Minute)
			}
			continue
		}
		return t
	}
	return time.Time{}
}

func (c *cronSchedule) dayMatches(t time.Time) bool {
	dom := c.dom&(1<<t.Day()) != 0
	dow := c.dow&(1<<int(t.Weekday())) != 0
	if c.domStar || c.dowStar {
		return dom && dow
	}
	return dom || dow
}

// String returns the expression as given.
func (c *cronSchedule) String() string { return c.spec }

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
// made up for. A failed run is logged and does not stop Run.
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
