package server

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
)

// readBody returns the body whole whatever its announced length, and the
// cap still holds.
func TestReadBody(t *testing.T) {
	for _, n := range []int{0, 1, 511, 512, 513, 4096, presizeBody, presizeBody + 1} {
		body := bytes.Repeat([]byte("x"), n)
		for _, announced := range []int64{int64(n), -1} {
			r := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
			r.ContentLength = announced
			got, err := readBody(r)
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("%d bytes announced as %d: %d bytes back, %v", n, announced, len(got), err)
			}
		}
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(strings.Repeat("x", 100)))
	r.Body = http.MaxBytesReader(w, r.Body, 50)
	var mbe *http.MaxBytesError
	if _, err := readBody(r); !errors.As(err, &mbe) {
		t.Errorf("a body over the cap: %v, want a MaxBytesError", err)
	}
}

// BenchmarkReadBody reads the body of one POST /v1/events with a 1 KiB
// payload; cpu-ns/op is the process's CPU per body.
func BenchmarkReadBody(b *testing.B) {
	body := []byte(`{"session":"load-1","kind":"llm.request","actor":{"type":"agent","id":"loadgen"},"payload":{"prompt":"` + strings.Repeat("a", 1024) + `"}}`)
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	start := ru.Utime.Nano() + ru.Stime.Nano()
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
		if _, err := readBody(r); err != nil {
			b.Fatal(err)
		}
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	b.ReportMetric(float64(ru.Utime.Nano()+ru.Stime.Nano()-start)/float64(b.N), "cpu-ns/op")
}
