package capture

import (
	"context"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Records of one session go through one queue, in the order the front
// doors hand them over, so that the session's chain follows the calls: a
// call's request, its response and tool calls, the next call's request.
//
// Only a FailClosed request waits for its record. Records nobody waits for
// (responses, tool calls, FailOpen requests) linger up to the record linger
// (WithRecordLinger) so that the session's next request, if it comes at
// once, shares their append: a call made right after the previous one's
// response then waits for one append instead of two (group commit).
// Whatever is queued while a record is in flight goes out together in the
// next one.
//
// A proxied response can end for the agent before its handler has queued
// the response's events (the agent has the last byte and sends its next
// request on another connection). To keep the chain in call order the
// proxy reserves the response's place in the queue (reserve) before it
// writes the last bytes, and fills it in afterwards.

// maxQueueBatch bounds the events of one record.
const maxQueueBatch = 256

type recordItem struct {
	rec Recorder
	evs []*event.Request
	// done, if not nil, receives the outcome (res is set first on success);
	// someone waits for it.
	done chan error
	res  []event.Appended
	// failed, if not nil, is called when the events could not be recorded.
	failed func(error)
	// recorded, if not nil, is called with the events' results once they
	// are recorded.
	recorded func([]event.Appended)
	// ready, if not nil, is closed when a reserved item has been filled.
	ready chan struct{}
	at    time.Time // when it was queued (or filled)
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

// queue is a session's pending records. It exists while its runner runs.
type queue struct {
	items []*recordItem
	wake  chan struct{} // a waiter was queued: stop lingering
}

// enqueue hands events to the session's queue.
func (c *core) enqueue(scope, session string, it *recordItem) {
	c.bg.add()
	if it.ready == nil {
		it.at = time.Now()
	}
	k := queueKey{scope, session}
	c.qmu.Lock()
	q, running := c.queues[k]
	if !running {
		q = &queue{wake: make(chan struct{}, 1)}
		c.queues[k] = q
	}
	q.items = append(q.items, it)
	c.qmu.Unlock()
	if it.done != nil {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	if !running {
		go c.runQueue(k, q)
	}
}

// reserve queues a place to be filled by fill.
func (c *core) reserve(scope, session string) *recordItem {
	it := &recordItem{ready: make(chan struct{})}
	c.enqueue(scope, session, it)
	return it
}

// fill completes a reserved item.
func fill(it *recordItem, rec Recorder, evs []*event.Request, failed func(error), recorded func([]event.Appended)) {
	it.rec, it.evs, it.failed, it.recorded, it.at = rec, evs, failed, recorded, time.Now()
	close(it.ready)
}

func (c *core) runQueue(k queueKey, q *queue) {
	for {
		c.qmu.Lock()
		items := q.items
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
		n, events, waiter := 0, 0, false
		for n < len(items) && items[n].isReady() && (n == 0 || events+len(items[n].evs) <= maxQueueBatch) {
			events += len(items[n].evs)
			waiter = waiter || items[n].done != nil
			n++
		}
		if linger := time.Until(items[0].at.Add(c.o.recordLinger)); !waiter && n == len(items) && linger > 0 {
			c.qmu.Unlock()
			t := time.NewTimer(linger)
			select {
			case <-q.wake:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		q.items = items[n:len(items):len(items)]
		c.qmu.Unlock()
		// Drain a wake-up meant for items taken now.
		select {
		case <-q.wake:
		default:
		}
		c.recordItems(k.scope, items[:n])
	}
}

// recordItems records items in one batch (one at a time if the batch is
// refused for good, so that one bad event cannot take others down).
func (c *core) recordItems(scope string, items []*recordItem) {
	var batch []*event.Request
	for _, it := range items {
		batch = append(batch, it.evs...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.o.recordTimeout)
	res, err := c.record(ctx, items[0].rec, scope, batch)
	cancel()
	if err != nil && len(items) > 1 && permanentError(err) {
		for _, it := range items {
			c.recordItems(scope, []*recordItem{it})
		}
		return
	}
	for _, it := range items {
		if err == nil {
			it.res, res = res[:len(it.evs)], res[len(it.evs):]
			if it.recorded != nil {
				it.recorded(it.res)
			}
		} else if it.failed != nil {
			it.failed(err)
		}
		if it.done != nil {
			it.done <- err
		}
		c.bg.done()
	}
}
