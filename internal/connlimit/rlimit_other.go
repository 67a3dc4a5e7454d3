//go:build !unix

package connlimit

// FileLimit is unknown here: 0, 0.
func FileLimit() (soft, hard uint64) { return 0, 0 }
