package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/internal/settings"
	"github.com/llmaudittrail/llmaudittrail/llmapi"
)

// The repeatable settings. Each is a flag.Value (a flag given again adds a
// value) and a yaml.Unmarshaler (a key in a --config file gives them all).

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

// upstreamFlags collects repeatable --upstream NAME=BASE_URL flags; in a
// file, a mapping of NAME to BASE_URL.
type upstreamFlags map[string]string

func (u *upstreamFlags) String() string { return pairs(*u) }

func (u *upstreamFlags) Set(s string) error {
	name, base, err := capture.ParseUpstream(s)
	if err != nil {
		return err
	}
	if *u == nil {
		*u = upstreamFlags{}
	}
	if _, dup := (*u)[name]; dup {
		return fmt.Errorf("upstream %q given twice", name)
	}
	(*u)[name] = base
	return nil
}

func (u *upstreamFlags) UnmarshalYAML(n *yaml.Node) error {
	out := upstreamFlags{}
	err := setPairs(n, "NAME: BASE_URL", out.Set)
	*u = out
	return err
}

// resolveFlags collects repeatable HOST=ADDR flags; in a file, a mapping
// of HOST to ADDR.
type resolveFlags map[string]string

func (r *resolveFlags) String() string { return pairs(*r) }

func (r *resolveFlags) Set(s string) error {
	host, addr, ok := strings.Cut(s, "=")
	if !ok || host == "" || addr == "" {
		return fmt.Errorf("%q: want HOST=ADDR", s)
	}
	if *r == nil {
		*r = resolveFlags{}
	}
	(*r)[host] = addr
	return nil
}

func (r *resolveFlags) UnmarshalYAML(n *yaml.Node) error {
	out := resolveFlags{}
	err := setPairs(n, "HOST: ADDR", out.Set)
	*r = out
	return err
}

// pairs shows a map as K=V,... in key order.
func pairs(m map[string]string) string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// setPairs calls set with K=V for each entry of the YAML mapping n, whose
// entries are what, in the file's order.
func setPairs(n *yaml.Node, what string, set func(string) error) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("want a mapping of %s", what)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
			return settings.At(k, fmt.Errorf("want %s", what))
		}
		if err := set(k.Value + "=" + v.Value); err != nil {
			return settings.At(k, err)
		}
	}
	return nil
}

// listFlag collects a repeatable flag; in a file, a list.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func (l *listFlag) UnmarshalYAML(n *yaml.Node) error {
	*l = nil
	if n.Kind != yaml.SequenceNode {
		return errors.New("want a list of strings")
	}
	for _, v := range n.Content {
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
			return settings.At(v, errors.New("want a list of strings"))
		}
		*l = append(*l, v.Value)
	}
	return nil
}
