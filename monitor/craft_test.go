package monitor

import (
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/crafttest"
)

// craftConfig is a monitor configuration for a crafted log.
func craftConfig(c *crafttest.Log, state string) Config {
	return Config{
		Log: testClient(c.HS.URL, ""), LogKey: c.Key, StateDir: state, Poll: 50 * time.Millisecond,
		Logger: quietLogger(),
	}
}

func attrs(kv ...any) map[string]any { return crafttest.Attrs(kv...) }
