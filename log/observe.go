package log

import "time"

// Observations of the write path (metrics).

func (l *Log) observeDurable(d time.Duration) {}

func (l *Log) observeIndexed(d time.Duration) {}

func (l *Log) observePushback() {}

func (l *Log) observeBatch(n int) {}
