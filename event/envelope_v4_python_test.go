package event

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEnvelopeV4Python runs the Python program of docs/leaf-format.md
// ("Version 4: body fields"), which recomputes the test vector's field
// salt, root digest list and fields from its secret and body with Python's
// standard library alone, and checks that it prints "True True True".
// Skipped without python3.
func TestEnvelopeV4Python(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	doc, err := os.ReadFile(filepath.Join("..", "docs", "leaf-format.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, v4, ok := strings.Cut(string(doc), "\n## Version 4: body fields\n")
	if !ok {
		t.Fatal(`docs/leaf-format.md has no "## Version 4: body fields"`)
	}
	m := regexp.MustCompile("(?s)```python\n(.*?)```").FindStringSubmatch(v4)
	if m == nil {
		t.Fatal("the version 4 section of docs/leaf-format.md has no Python program")
	}
	cmd := exec.Command(py, "-c", m[1])
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "True True True" {
		t.Fatalf("python3: %v\n%s", err, out)
	}
}
