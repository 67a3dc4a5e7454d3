//go:build !unix

package vault

func cpuTime() int64 { return 0 }
