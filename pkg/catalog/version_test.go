package catalog

import (
	"slices"
	"testing"
)

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"9.10", "9.9", 1},
		{"24.04", "22.04", 1},
		{"22.04", "22.10", -1},
		{"10", "9", 1},
		{"41 Beta", "41", -1},
		{"41", "41 Beta", 1},
		{"41 Beta", "40", 1},
		{"16.0-rc1", "16.0", -1},
		{"41 Beta", "41 RC", -1},
		{"1.14", "1.2", 1},
		{"20240101.0", "20231231.3", 1},
		{"15.6", "15.6", 0},
		{"09", "9", 0},
		{"", "1", -1},
		{"tumbleweed", "tumbleweed", 0},
		{"20250210-2019", "20250210-1200", 1},
	}
	for _, tt := range tests {
		if got := CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := CompareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestCompareVersionsSorts(t *testing.T) {
	in := []string{"9.9", "41", "9.10", "41 Beta", "10", "22.04", "9"}
	slices.SortFunc(in, CompareVersions)
	want := []string{"9", "9.9", "9.10", "10", "22.04", "41 Beta", "41"}
	if !slices.Equal(in, want) {
		t.Errorf("sorted = %q, want %q", in, want)
	}
}

func TestIsPrerelease(t *testing.T) {
	for v, want := range map[string]bool{"41 Beta": true, "41": false, "16.0-rc1": true, "24.04": false} {
		if got := IsPrerelease(v); got != want {
			t.Errorf("IsPrerelease(%q) = %v, want %v", v, got, want)
		}
	}
}

func FuzzCompareVersions(f *testing.F) {
	for _, s := range []string{"9.10", "41 Beta", "24.04", "", "1..2", "a1b2", "20250210-2019"} {
		f.Add(s, "9.9")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if CompareVersions(a, a) != 0 {
			t.Fatalf("CompareVersions(%q, itself) != 0", a)
		}
		if CompareVersions(a, b) != -CompareVersions(b, a) {
			t.Fatalf("CompareVersions(%q, %q) not antisymmetric", a, b)
		}
	})
}
