//go:build unix

package connlimit

import "syscall"

// FileLimit raises the soft limit on open files (RLIMIT_NOFILE) to the hard
// limit (Go's runtime already does so at start on Linux and macOS; this
// covers the rest) and returns both; 0, 0 if they cannot be read.
func FileLimit() (soft, hard uint64) {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) != nil {
		return 0, 0
	}
	if r.Cur < r.Max {
		up := r
		up.Cur = r.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up) == nil {
			r = up
		}
	}
	return uint64(r.Cur), uint64(r.Max)
}
