package main

import (
	"flag"
	"io"
	"reflect"
	"testing"
)

func TestUpstreamFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want upstreamFlags
		ok   bool
	}{
		{nil, upstreamFlags{}, true},
		{[]string{"--upstream", "local=http://127.0.0.1:8000/v1", "--upstream", "openai=https://eu.api.openai.com"},
			upstreamFlags{"local": "http://127.0.0.1:8000/v1", "openai": "https://eu.api.openai.com"}, true},
		{[]string{"--upstream", "local"}, nil, false},
		{[]string{"--upstream", "Bad Name=http://x"}, nil, false},
		{[]string{"--upstream", "x=ftp://host"}, nil, false},
		{[]string{"--upstream", "x=https://host?key=1"}, nil, false},
		{[]string{"--upstream", "x=http://a", "--upstream", "x=http://b"}, nil, false},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		u := upstreamFlags{}
		fs.Var(&u, "upstream", "")
		err := fs.Parse(tt.args)
		if (err == nil) != tt.ok || (tt.ok && !reflect.DeepEqual(u, tt.want)) {
			t.Errorf("%v: %v %v", tt.args, u, err)
		}
	}
}
