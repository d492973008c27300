package backoff

import (
	"context"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"   ", 0, false},
		{"0", 0, true},
		{"1", time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"007", 7 * time.Second, true},
		{"86400", 24 * time.Hour, true},
		{"86401", 24 * time.Hour, true},                   // capped
		{"99999999999999999999999", 24 * time.Hour, true}, // overflows int64: capped
		{"-1", 0, false},
		{"+1", 0, false},
		{"1.5", 0, false},
		{"1s", 0, false},
		{"10 20", 0, false},
		{"soon", 0, false},
		{"Thu, 02 Jan 2025 03:04:35 GMT", 30 * time.Second, true}, // RFC 1123
		{"Thursday, 02-Jan-25 03:05:05 GMT", time.Minute, true},   // RFC 850
		{"Thu Jan  2 03:04:15 2025", 10 * time.Second, true},      // asctime
		{"Thu, 02 Jan 2025 03:00:00 GMT", 0, true},                // past: no wait
		{"Fri, 02 Jan 2026 03:04:05 GMT", 24 * time.Hour, true},   // a year: capped
		{"Thu, 02 Jan 2025 03:04:35 +0000", 0, false},             // not an HTTP date
		{"2025-01-02T03:04:35Z", 0, false},                        // not an HTTP date
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

// TestDelay checks the waits each retry loop had before they shared
// Policy: the registry transport (250 ms doubled to 10 s, equal jitter),
// the upstream client (500 ms doubled to 30 s, equal jitter), blob
// uploads (250 ms doubled to 5 s) and cluster checks (1 s doubled to 10 s).
func TestDelay(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		p    Policy
		// want are the waits before retries 1, 2, …, without jitter.
		want []time.Duration
	}{
		{"registry", Policy{Initial: 250 * ms, Max: 10 * time.Second}, []time.Duration{250 * ms, 500 * ms, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}},
		{"upstream", Policy{Initial: 500 * ms, Max: 30 * time.Second}, []time.Duration{500 * ms, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second}},
		{"upload", Policy{Initial: 250 * ms, Max: 5 * time.Second}, []time.Duration{250 * ms, 500 * ms, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}},
		{"cluster", Policy{Initial: time.Second, Max: 10 * time.Second}, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second}},
		{"Initial above Max", Policy{Initial: time.Minute, Max: time.Second}, []time.Duration{time.Second, time.Second}},
	}
	for _, tt := range tests {
		for i, want := range tt.want {
			n := i + 1
			if got := tt.p.Delay(n); got != want {
				t.Errorf("%s: Delay(%d) = %v, want %v", tt.name, n, got, want)
			}
			j := tt.p
			j.Jitter = true
			for range 20 {
				if got := j.Delay(n); got < want/2 || got > want {
					t.Errorf("%s: Delay(%d) with jitter = %v, want within [%v, %v]", tt.name, n, got, want/2, want)
				}
			}
		}
	}
	// However many retries, no overflow: the wait stays Max.
	p := Policy{Initial: 250 * ms, Max: 10 * time.Second}
	for _, n := range []int{40, 64, 1000, 1 << 30} {
		if got := p.Delay(n); got != p.Max {
			t.Errorf("Delay(%d) = %v, want %v", n, got, p.Max)
		}
	}
}

func TestSleep(t *testing.T) {
	start := time.Now()
	if err := Sleep(t.Context(), 20*time.Millisecond); err != nil || time.Since(start) < 20*time.Millisecond {
		t.Errorf("Sleep(20ms) = %v after %v, want nil after 20ms", err, time.Since(start))
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start = time.Now()
	if err := Sleep(ctx, time.Hour); err != context.Canceled || time.Since(start) > time.Second {
		t.Errorf("Sleep(1h) with a cancelled context = %v after %v, want context.Canceled at once", err, time.Since(start))
	}
}
