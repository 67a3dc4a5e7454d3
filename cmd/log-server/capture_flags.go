package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/capture"
)

// upstreamFlags collects repeatable --upstream NAME=BASE_URL flags.
type upstreamFlags map[string]string

func (u upstreamFlags) String() string {
	var out []string
	for k, v := range u {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func (u upstreamFlags) Set(s string) error {
	name, base, err := capture.ParseUpstream(s)
	if err != nil {
		return err
	}
	if _, dup := u[name]; dup {
		return fmt.Errorf("upstream %q given twice", name)
	}
	u[name] = base
	return nil
}

// resolveFlags collects repeatable HOST=ADDR flags.
type resolveFlags map[string]string

func (u resolveFlags) String() string { return upstreamFlags(u).String() }

func (u resolveFlags) Set(s string) error {
	host, addr, ok := strings.Cut(s, "=")
	if !ok || host == "" || addr == "" {
		return fmt.Errorf("%q: want HOST=ADDR", s)
	}
	u[host] = addr
	return nil
}
