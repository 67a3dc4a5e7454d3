//go:build race

package strictjson

// raceEnabled: the race detector's instrumentation allocates, so counts of
// allocations are not the code's.
const raceEnabled = true
