//go:build !unix

package disclosure

func cpuTime() int64 { return 0 }
