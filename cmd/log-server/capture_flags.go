package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/llmapi"
)

// builtinUpstreams lists the registered providers' default upstreams
// (llmapi), NAME=BASE_URL, for the help text.
func builtinUpstreams() string {
	var out []string
	for _, p := range llmapi.Providers() {
		if p.Upstream != "" {
			out = append(out, p.Name+"="+p.Upstream)
		}
	}
	return strings.Join(out, ", ")
}

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
