package backend_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/backend"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/dbtest"
	"github.com/llmaudittrail/llmaudittrail/internal/storetest"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
)

// A clock stepped back leaves the time of the last publication in the
// future, and both of Tessera's drivers then publish nothing until the
// clock catches up; UnstickPublication resets it and publication resumes.
func TestClockStepBackStopsPublication(t *testing.T) {
	for _, kind := range []string{backend.POSIX, backend.S3} {
		t.Run(kind, func(t *testing.T) {
			cfg := backend.Config{Kind: kind, DataDir: t.TempDir()}
			if kind == backend.S3 {
				ep, bucket := dbtest.S3(t)
				cfg.DSN, cfg.S3 = dbtest.MariaDB(t), backend.S3Config{Endpoint: ep, Bucket: bucket}
			}
			b := open(t, cfg)
			// Without the guard, to show what it prevents.
			l := storetest.Engine(t, b, storetest.NewKeys(t, "test/clock"), func(c *auditlog.Config) { c.UnstickPublication = nil })
			ctx := context.Background()
			w := event.Writer{Token: "t", Via: event.ViaAPI}
			req := func() []*event.Request {
				return []*event.Request{{Session: "s", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "a"}}}
			}
			first, err := l.Append(ctx, "t", w, req())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.WaitReceipt(ctx, first[0].Index, first[0].Leaf); err != nil {
				t.Fatal(err)
			}
			ahead := time.Now().Add(time.Hour)
			if kind == backend.S3 {
				if _, err := b.State.Exec(`UPDATE PubCoord SET publishedAt = ? WHERE id = 0`, ahead.Unix()); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Chtimes(filepath.Join(cfg.DataDir, backend.LogDir, "checkpoint"), ahead, ahead); err != nil {
				t.Fatal(err)
			}
			next, err := l.Append(ctx, "t", w, req())
			if err != nil {
				t.Fatal(err)
			}
			wctx, cancel := context.WithTimeout(ctx, 4*time.Second)
			_, err = l.WaitReceipt(wctx, next[0].Index, next[0].Leaf)
			cancel()
			if err == nil {
				t.Fatal("a checkpoint was published while the last publication's time was an hour ahead: this test no longer shows the failure")
			}
			if ok, err := b.UnstickPublication(ctx); err != nil || !ok {
				t.Fatalf("UnstickPublication = %v, %v; want a reset", ok, err)
			}
			wctx, cancel = context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if _, err := l.WaitReceipt(wctx, next[0].Index, next[0].Leaf); err != nil {
				t.Fatalf("no checkpoint after the reset: %v", err)
			}
			if ok, _ := b.UnstickPublication(ctx); ok {
				t.Fatal("UnstickPublication reset a time that was not ahead")
			}
		})
	}
}
