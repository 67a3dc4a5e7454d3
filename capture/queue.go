package capture

import (
	"context"
	"errors"

	auditlog "github.com/llmaudittrail/llmaudittrail/log"
)

// Records of one session go through one queue, in the order the front
// doors hand them over, so the session's chain follows the calls: a call's
// request, its response and tool calls, the next call's request. Nothing
// but a FailClosed request waits for its record; whatever is queued while
// a record is in flight goes out together in the next one (one Append, one
// Tessera batch wait, for a response and the request that follows it).

// A proxied response can end for the agent before its handler queues the
// response's events (the agent has the last byte and sends its next
// request on another connection). To keep the chain in call order the
// proxy reserves the response's place in the queue (reserve) before it
// writes the last bytes, and fills it in afterwards.

// maxQueueBatch bounds the events of one record.
const maxQueueBatch = 256

type recordItem struct {
	rec Recorder
	evs []*auditlog.Request
	// done, if not nil, receives the outcome (res is set first on success).
	done chan error
	res  []auditlog.Result
	// failed, if not nil, is called when the events could not be recorded.
	failed func(error)
	// ready, if not nil, is closed when a reserved item has been filled.
	ready chan struct{}
}

func (it *recordItem) isReady() bool {
	if it.ready == nil {
		return true
	}
	select {
	case <-it.ready:
		return true
	default:
		return false
	}
}

type queueKey struct{ scope, session string }

// enqueue hands events to the session's queue.
func (c *core) enqueue(scope, session string, it *recordItem) {
	c.bg.add()
	k := queueKey{scope, session}
	c.qmu.Lock()
	pend, running := c.queues[k]
	c.queues[k] = append(pend, it)
	c.qmu.Unlock()
	if !running {
		go c.runQueue(k)
	}
}

// reserve queues a place to be filled by fill.
func (c *core) reserve(scope, session string) *recordItem {
	it := &recordItem{ready: make(chan struct{})}
	c.enqueue(scope, session, it)
	return it
}

// fill completes a reserved item.
func fill(it *recordItem, rec Recorder, evs []*auditlog.Request, failed func(error)) {
	it.rec, it.evs, it.failed = rec, evs, failed
	close(it.ready)
}

func (c *core) runQueue(k queueKey) {
	for {
		c.qmu.Lock()
		items := c.queues[k]
		if len(items) == 0 {
			delete(c.queues, k)
			c.qmu.Unlock()
			return
		}
		if !items[0].isReady() {
			// A reserved place: the items behind it wait for it.
			c.qmu.Unlock()
			<-items[0].ready
			continue
		}
		n, events := 0, 0
		for n < len(items) && items[n].isReady() && (n == 0 || events+len(items[n].evs) <= maxQueueBatch) {
			events += len(items[n].evs)
			n++
		}
		c.queues[k] = items[n:len(items):len(items)]
		c.qmu.Unlock()
		c.recordItems(k.scope, items[:n])
	}
}

// recordItems records items in one batch (one at a time if the batch is
// refused as invalid, so that one bad event cannot take others down).
func (c *core) recordItems(scope string, items []*recordItem) {
	var batch []*auditlog.Request
	for _, it := range items {
		batch = append(batch, it.evs...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.o.recordTimeout)
	res, err := c.record(ctx, items[0].rec, scope, batch)
	cancel()
	if err != nil && len(items) > 1 && errors.Is(err, auditlog.ErrInvalidEvent) {
		for _, it := range items {
			c.recordItems(scope, []*recordItem{it})
		}
		return
	}
	for _, it := range items {
		if err == nil {
			it.res, res = res[:len(it.evs)], res[len(it.evs):]
		} else if it.failed != nil {
			it.failed(err)
		}
		if it.done != nil {
			it.done <- err
		}
		c.bg.done()
	}
}
