package capture

import (
	"bytes"
	"testing"
)

// TestCapBufHint: a budgeted buffer whose body announced its length takes
// (and allocates) that length, not a whole step, keeps every byte when the
// body is as announced, and grows by steps past it when the body is longer.
func TestCapBufHint(t *testing.T) {
	for _, tc := range []struct {
		name       string
		hint, size int
		wantHeld   int64 // after the first write
	}{
		{"announced", 700, 700, 700},
		{"no length", 0, 700, capBufStep},
		{"longer than announced", 700, 5000, 700 + capBufStep},
		{"announced beyond a step", 1 << 30, 700, capBufStep},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bud := NewBodyBudget(0)
			b := capBuf{max: 1 << 20, budget: bud, client: "c", hint: int64(tc.hint)}
			data := bytes.Repeat([]byte("x"), tc.size)
			b.write(data[:min(len(data), 700)])
			b.write(data[min(len(data), 700):])
			if b.held != tc.wantHeld || int64(cap(b.buf)) != tc.wantHeld {
				t.Errorf("held %d bytes in a buffer of %d, want %d", b.held, cap(b.buf), tc.wantHeld)
			}
			if !bytes.Equal(b.buf, data) || b.truncated() {
				t.Errorf("kept %d bytes (truncated %v), want all %d", len(b.buf), b.truncated(), len(data))
			}
			b.release()
			if bud.used != 0 {
				t.Errorf("%d bytes still taken after release", bud.used)
			}
		})
	}
}
