package llmapi

import "testing"

// TestToolKey: dots and underscores alike, nothing else folded.
func TestToolKey(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"dose.check", "dose_check"},
		{"fs.read.file", "fs_read_file"},
		{"fs.read_file", "fs_read.file"},
		{"", ""},
	} {
		if ToolKey(c.a) != ToolKey(c.b) {
			t.Errorf("ToolKey(%q) = %q, ToolKey(%q) = %q, want equal", c.a, ToolKey(c.a), c.b, ToolKey(c.b))
		}
	}
	for _, c := range []struct{ a, b string }{
		{"dose.check", "dose-check"},
		{"Dose.check", "dose_check"},
		{"dosecheck", "dose_check"},
	} {
		if ToolKey(c.a) == ToolKey(c.b) {
			t.Errorf("ToolKey(%q) = ToolKey(%q) = %q, want different", c.a, c.b, ToolKey(c.a))
		}
	}
}
