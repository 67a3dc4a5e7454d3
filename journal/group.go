package journal

import (
	"context"
	"sync"
)

// groups is the queue in front of a journal's writer goroutine. Append puts
// an append on it and waits for the writer's answer; the writer takes the
// first append waiting and every one behind it into one group (group
// commit), so that one fsync or one transaction serves them all.
type groups struct {
	queue  chan *appendReq
	closed chan struct{}
	done   chan struct{} // closed by the writer when it stops
	once   sync.Once
}

type appendReq struct {
	entries []*Entry
	err     chan error
}

func newGroups() groups {
	return groups{queue: make(chan *appendReq, 4096), closed: make(chan struct{}), done: make(chan struct{})}
}

// submit queues entries for the writer and returns its answer.
func (g *groups) submit(ctx context.Context, entries []*Entry) error {
	for _, e := range entries {
		if len(e.Data) > MaxRecord {
			return ErrTooLarge
		}
	}
	req := &appendReq{entries: entries, err: make(chan error, 1)}
	select {
	case <-g.closed:
		return ErrClosed
	default:
	}
	select {
	case g.queue <- req:
	case <-g.closed:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued the write happens; wait for it, so that a caller never
	// gives up on a record that becomes durable. (A writer that stopped
	// before it took the request never answers: closed.)
	select {
	case err := <-req.err:
		return err
	case <-g.done:
		select {
		case err := <-req.err:
			return err
		default:
			return ErrClosed
		}
	}
}

// gather returns first and every append queued behind it, up to
// DefaultMaxGroup bytes.
func (g *groups) gather(first *appendReq) []*appendReq {
	batch := []*appendReq{first}
	size := batchBytes(batch)
	for size < DefaultMaxGroup {
		select {
		case r := <-g.queue:
			batch = append(batch, r)
			size += batchBytes(batch[len(batch)-1:])
		default:
			return batch
		}
	}
	return batch
}

// drain commits what is still queued once the journal is closed, an
// append at a time.
func (g *groups) drain(commit func([]*appendReq)) {
	for {
		select {
		case r := <-g.queue:
			commit([]*appendReq{r})
		default:
			return
		}
	}
}

// stop closes the queue and waits for the writer.
func (g *groups) stop() {
	g.once.Do(func() { close(g.closed) })
	<-g.done
}

func batchBytes(b []*appendReq) int {
	n := 0
	for _, r := range b {
		for _, e := range r.entries {
			n += frameHead + len(e.Data)
		}
	}
	return n
}
