package main

import (
	"log/slog"
	"runtime/debug"
)

// defaultGCPercent is --gc-percent's default. Go's own (100) had the
// garbage collector take about a fifth of the server's CPU at 512 clients;
// at 400 the heap between collections is five times the live heap, which
// on the write path is a few tens of MB (docs/performance.md, "Write path
// CPU per event", gives the CPU and RSS of both).
const defaultGCPercent = 400

// setGC sets the garbage collector's target to percent unless the
// operator set $GOGC (getenv), which the runtime has applied already, and
// logs which one holds. $GOMEMLIMIT, a soft memory limit, applies either
// way: under it the collector runs more often as the heap nears the limit.
func setGC(percent int, getenv func(string) string, logger *slog.Logger) {
	if env := getenv("GOGC"); env != "" {
		logger.Debug("garbage collector target from $GOGC", "GOGC", env)
		return
	}
	debug.SetGCPercent(percent)
	logger.Debug("garbage collector target", "gc_percent", percent)
}
