package main

import (
	"log/slog"
	"runtime/debug"
	"testing"
)

// TestSetGC: --gc-percent sets the collector's target unless $GOGC is
// set, and the default is the documented 400.
func TestSetGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	if c := defaultConfig(); c.GCPercent != 400 {
		t.Errorf("default --gc-percent %d, want 400", c.GCPercent)
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "GOGC" {
				return v
			}
			return ""
		}
	}
	setGC(250, env(""), slog.New(slog.DiscardHandler))
	if got := debug.SetGCPercent(100); got != 250 {
		t.Errorf("without $GOGC: target %d, want 250", got)
	}
	setGC(250, env("50"), slog.New(slog.DiscardHandler))
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with $GOGC set: target %d, want it left at 100", got)
	}
	c := defaultConfig()
	c.GCPercent = 0
	if err := c.check(func(string) string { return "" }); err == nil {
		t.Error("--gc-percent 0 accepted")
	}
}
