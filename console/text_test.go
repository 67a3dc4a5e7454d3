package console

import (
	"encoding/json"
	"testing"
	"time"
)

func TestValue(t *testing.T) {
	for _, c := range []struct {
		in   any
		want string
	}{
		{"text\x1b", `text\x1b`},
		{json.Number("42"), "42"},
		{true, "true"},
		{[]any{"<a>", json.Number("1")}, `["<a>",1]`},
		{map[string]any{"k": "v\n"}, `{"k":"v\n"}`},
	} {
		if got := value(c.in); got != c.want {
			t.Errorf("value(%#v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestIngestRate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name   string
		obs    []sample
		now    time.Time
		want   float64
		wantOK bool
	}{
		{"one reading", []sample{{t0, 10}}, t0, 0, false},
		{"two readings too close", []sample{{t0, 10}, {t0.Add(2 * time.Second), 20}}, t0.Add(2 * time.Second), 0, false},
		{"60 entries in a minute", []sample{{t0, 10}, {t0.Add(30 * time.Second), 40}, {t0.Add(time.Minute), 70}}, t0.Add(time.Minute), 60, true},
		{"only the window counts", []sample{{t0, 0}, {t0.Add(time.Hour), 1000}, {t0.Add(time.Hour + time.Minute), 1010}}, t0.Add(time.Hour + time.Minute), 10, true},
		{"a stale smaller checkpoint is no sample", []sample{{t0, 100}, {t0.Add(10 * time.Second), 50}, {t0.Add(time.Minute), 160}}, t0.Add(time.Minute), 60, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSamples()
			for i, o := range c.obs {
				s.observe(o.at, o.size, string(rune('a'+i)))
			}
			got, _, ok := s.rate(c.now, 15*time.Minute)
			if ok != c.wantOK || (ok && (got < c.want-0.01 || got > c.want+0.01)) {
				t.Fatalf("rate = %v, %v; want %v, %v", got, ok, c.want, c.wantOK)
			}
		})
	}
	s := newSamples()
	first := s.observe(t0, 5, "root")
	if again := s.observe(t0.Add(time.Minute), 5, "root"); !again.Equal(first) {
		t.Fatalf("a root first seen at %v is reported first seen at %v", first, again)
	}
}
