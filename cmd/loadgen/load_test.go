package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/client"
)

// TestErrorSummary: each kind of error is counted and shown with its first
// message, so that a failed run says why (a 503 is pushback, heads moved by
// another instance, or a lock held too long: the message tells them apart).
func TestErrorSummary(t *testing.T) {
	st := &stats{errors: map[string]int{}}
	st.fail(&client.Error{StatusCode: 503, Code: "overloaded", Message: "log is overloaded: sessions moved by other instances 8 times in a row"})
	st.fail(&client.Error{StatusCode: 503, Code: "overloaded", Message: "a later one"})
	st.fail(errors.New("connection refused"))
	got := st.errorSummary()
	for _, want := range []string{
		"\n  503 overloaded ×2, first: log server: 503 overloaded: log is overloaded: sessions moved by other instances 8 times in a row",
		"\n  connection refused ×1, first: connection refused",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "a later one") || st.failed.Load() != 3 {
		t.Errorf("summary %q (failed %d): want the first message of each kind only, and 3 failures", got, st.failed.Load())
	}
	if (&stats{errors: map[string]int{}}).errorSummary() != "" {
		t.Error("a run without errors has a summary")
	}
}
