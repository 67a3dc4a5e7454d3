// Package clitest checks that the docs show what the binaries print for --help.
package clitest

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

var helpBlockRE = regexp.MustCompile("(?s)```\n\\$ ([^\n]*--help)\n(.*?)```")

// CheckHelp runs the binary bin with each "$ NAME ... --help" block of the
// Markdown file doc that names the binary, and fails t unless the output is
// exactly the block. It fails too if doc shows no --help of the binary or
// one of want (argument lists such as "token create --help") is missing.
func CheckHelp(t *testing.T, bin, name, doc string, want ...string) {
	t.Helper()
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range helpBlockRE.FindAllStringSubmatch(string(b), -1) {
		fields := strings.Fields(m[1])
		if fields[0] != name {
			continue
		}
		args := fields[1:]
		seen[strings.Join(args, " ")] = true
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Errorf("%s: %v", m[1], err)
			continue
		}
		if string(out) != m[2] {
			t.Errorf("%s prints\n%s\nbut %s shows\n%s", m[1], out, doc, m[2])
		}
	}
	for _, w := range append([]string{"--help"}, want...) {
		if !seen[w] {
			t.Errorf("%s shows no \"$ %s %s\" block", doc, name, w)
		}
	}
}
