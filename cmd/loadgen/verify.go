package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	fmtlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	tapi "github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// verifyWait bounds the wait for a checkpoint that covers every
// acknowledged event.
const verifyWait = 2 * time.Minute

// verify checks every acknowledged event as a third party would. It waits
// for a checkpoint that covers them all, signed with key and meeting
// policy; then, with a log-wide token, it reads every entry bundle, hashes
// the tree to the checkpoint's root (so every leaf read is the log's), finds
// each acked event's leaf at its index, and checks that each session the
// run wrote is one hash chain (seq 0, 1, ... in index order, each prev the
// leaf hash of the event before), counting events of those sessions that
// no answer acknowledged. Without bundle access (a tenant token) it checks
// an inclusion proof per acked event, and the chain between acked events.
func verify(lc *client.Client, key note.Verifier, policy *checkpoint.Policy, acks []acked, out io.Writer) error {
	if len(acks) == 0 {
		return errors.New("no event was acknowledged")
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), verifyWait)
	defer cancel()
	if err := resolveIndices(ctx, lc, acks); err != nil {
		return err
	}
	var maxIdx uint64
	for _, a := range acks {
		maxIdx = max(maxIdx, a.index)
	}
	var cp *fmtlog.Checkpoint
	for {
		raw, err := lc.Tiles().ReadCheckpoint(ctx)
		if err == nil {
			if cp, err = api.VerifyCheckpoint(raw, key, policy); err != nil {
				return fmt.Errorf("checkpoint: %w", err)
			}
			if cp.Size > maxIdx {
				break
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no checkpoint covered index %d within %s (last: %v)", maxIdx, verifyWait, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	sessions := map[string]bool{}
	for _, a := range acks {
		sessions[a.session] = true
	}
	leaves, err := readAll(ctx, lc, cp, sessions)
	var ce *client.Error
	switch {
	case errors.As(err, &ce) && (ce.StatusCode == 401 || ce.StatusCode == 403):
		fmt.Fprintf(out, "verify: the token may not read entry bundles (%v); checking an inclusion proof per event\n", err)
		return verifyEach(ctx, lc, cp, acks, out, start)
	case err != nil:
		return err
	}
	// Every acked event is the leaf at its index.
	for _, a := range acks {
		l, ok := leaves[a.index]
		if !ok || !bytes.Equal(l.hash, a.leafHash) {
			return fmt.Errorf("acked event %d of session %s: the log holds another leaf at its index", a.index, a.session)
		}
		if l.leaf.Session != a.session || l.leaf.Seq != a.seq {
			return fmt.Errorf("acked event %d: the leaf is session %s seq %d, the answer said %s seq %d", a.index, l.leaf.Session, l.leaf.Seq, a.session, a.seq)
		}
	}
	// Each session is one chain.
	bySession := map[string][]uint64{}
	for idx, l := range leaves {
		bySession[l.leaf.Session] = append(bySession[l.leaf.Session], idx)
	}
	total := 0
	for s, idxs := range bySession {
		slices.Sort(idxs)
		var prev []byte
		for i, idx := range idxs {
			l := leaves[idx]
			if l.leaf.Seq != uint64(i) {
				return fmt.Errorf("session %s: the event at index %d has seq %d, want %d", s, idx, l.leaf.Seq, i)
			}
			want := ""
			if prev != nil {
				want = fmt.Sprintf("%x", prev)
			}
			if l.leaf.Prev != want {
				return fmt.Errorf("session %s: the event at index %d (seq %d) has prev %q, want %q", s, idx, l.leaf.Seq, l.leaf.Prev, want)
			}
			prev = l.hash
		}
		total += len(idxs)
	}
	fmt.Fprintf(out, "verify: ok in %s: checkpoint size %d signed by %s%s; all %d leaves hash to its root; %d acked events are the leaves at their indices; %d sessions are intact chains of %d events (%d not acknowledged by this run)\n",
		time.Since(start).Round(time.Millisecond), cp.Size, key.Name(), policyNote(policy), cp.Size, len(acks), len(bySession), total, total-len(acks))
	return nil
}

func policyNote(p *checkpoint.Policy) string {
	if p == nil {
		return ""
	}
	return " and meeting the witness policy"
}

type leafAt struct {
	hash []byte
	leaf event.Head
}

// readAll reads every entry bundle of the tree of cp, checks that the
// leaves hash to its root, and returns the leaves of the sessions named.
func readAll(ctx context.Context, lc *client.Client, cp *fmtlog.Checkpoint, sessions map[string]bool) (map[uint64]leafAt, error) {
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	out := map[uint64]leafAt{}
	bundles := (cp.Size + layout.EntryBundleWidth - 1) / layout.EntryBundleWidth
	// Bundles are fetched ahead by a few workers and hashed in order.
	type fetched struct {
		b      *tapi.EntryBundle
		bodies map[uint64][]byte // leaf version 3: the events' bodies
		err    error
	}
	ch := make([]chan fetched, bundles)
	for i := range ch {
		ch[i] = make(chan fetched, 1)
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	fctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() {
		for i := range bundles {
			select {
			case sem <- struct{}{}:
			case <-fctx.Done():
				return
			}
			wg.Go(func() {
				raw, err := lc.Tiles().ReadEntryBundle(fctx, i, layout.PartialTileSize(0, i, cp.Size))
				var b tapi.EntryBundle
				if err == nil {
					err = b.UnmarshalText(raw)
				}
				var bodies map[uint64][]byte
				if err == nil && len(b.Entries) > 0 && event.IsEnvelope(b.Entries[0]) {
					first := i * layout.EntryBundleWidth
					var bs *api.Bodies
					if bs, err = lc.Bodies(fctx, first, min(first+layout.EntryBundleWidth, cp.Size), cp.Size); err == nil {
						bodies = make(map[uint64][]byte, len(bs.Entries))
						for _, e := range bs.Entries {
							bodies[e.Index] = e.Body
						}
					}
				}
				ch[i] <- fetched{&b, bodies, err}
			})
		}
	})
	for i := range bundles {
		var f fetched
		select {
		case f = <-ch[i]:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		<-sem
		if f.err != nil {
			return nil, fmt.Errorf("entry bundle %d: %w", i, f.err)
		}
		first := i * layout.EntryBundleWidth
		want := min(layout.EntryBundleWidth, cp.Size-first)
		if uint64(len(f.b.Entries)) < want {
			return nil, fmt.Errorf("entry bundle %d has %d entries, want %d", i, len(f.b.Entries), want)
		}
		for j, data := range f.b.Entries[:want] {
			h := rfc6962.DefaultHasher.HashLeaf(data)
			if err := r.Append(h, nil); err != nil {
				return nil, err
			}
			eh := h // the hash the session chain links with
			if event.IsEnvelope(data) {
				// Leaf version 3: the event is the body the envelope commits to.
				body, ok := f.bodies[first+uint64(j)]
				if !ok {
					continue // an acked event without it fails below
				}
				if _, err := event.OpenEnvelope(data, body, nil); err != nil {
					return nil, fmt.Errorf("entry %d: %w", first+uint64(j), err)
				}
				data, eh = body, event.LeafHash(body)
			}
			head, err := event.ParseHead(data)
			if err != nil || !sessions[head.Session] {
				continue
			}
			out[first+uint64(j)] = leafAt{hash: eh, leaf: head}
		}
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(root, cp.Hash) {
		return nil, fmt.Errorf("the %d leaves read hash to %x, the checkpoint says %x", cp.Size, root, cp.Hash)
	}
	return out, nil
}

// verifyEach checks an inclusion proof per acked event against cp, and
// the chain between acked events of a session.
func verifyEach(ctx context.Context, lc *client.Client, cp *fmtlog.Checkpoint, acks []acked, out io.Writer, start time.Time) error {
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	prevs := make([]string, len(acks))
	for i, a := range acks {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := func() error {
				r, err := lc.Entry(ctx, a.index, cp.Size)
				if err != nil {
					return err
				}
				if !bytes.Equal(event.LeafHash(r.Leaf), a.leafHash) {
					return fmt.Errorf("the log holds another leaf at %d", a.index)
				}
				mh := a.leafHash // the tree's leaf: the envelope's on a log of leaf version 3
				if r.Envelope != nil {
					if _, err := event.OpenEnvelope(r.Envelope, r.Leaf, nil); err != nil {
						return fmt.Errorf("event %d: %w", a.index, err)
					}
					mh = event.LeafHash(r.Envelope)
				}
				if err := api.VerifyInclusion(a.index, cp.Size, mh, r.InclusionProof, cp.Hash); err != nil {
					return fmt.Errorf("event %d: %w", a.index, err)
				}
				h, err := event.ParseHead(r.Leaf)
				if err != nil {
					return err
				}
				prevs[i] = h.Prev
				return nil
			}()
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	bySession := map[string][]int{}
	for i, a := range acks {
		bySession[a.session] = append(bySession[a.session], i)
	}
	for s, is := range bySession {
		slices.SortFunc(is, func(x, y int) int { return int(acks[x].seq) - int(acks[y].seq) })
		for k := 1; k < len(is); k++ {
			a, b := acks[is[k-1]], acks[is[k]]
			if b.seq == a.seq {
				return fmt.Errorf("session %s: two events with seq %d (indices %d, %d)", s, a.seq, a.index, b.index)
			}
			if b.seq == a.seq+1 && (prevs[is[k]] != fmt.Sprintf("%x", a.leafHash) || b.index <= a.index) {
				return fmt.Errorf("session %s: seq %d does not follow seq %d", s, b.seq, a.seq)
			}
		}
	}
	fmt.Fprintf(out, "verify: ok in %s: checkpoint size %d; %d acked events have verified inclusion proofs; %d sessions chain between acked events\n",
		time.Since(start).Round(time.Millisecond), cp.Size, len(acks), len(bySession))
	return nil
}

// resolveIndices asks the log for the index of every event acknowledged at
// durability (GET /v1/events/{id}), 32 at a time.
func resolveIndices(ctx context.Context, lc *client.Client, acks []acked) error {
	var mu sync.Mutex
	var first error
	work := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range work {
				idx, err := lc.WaitIndexed(ctx, acks[i].id, 50*time.Millisecond)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("acked event %s of session %s: %w", acks[i].id, acks[i].session, err)
					}
					mu.Unlock()
					continue
				}
				acks[i].index, acks[i].indexed = idx, true
			}
		})
	}
	for i := range acks {
		if !acks[i].indexed {
			work <- i
		}
	}
	close(work)
	wg.Wait()
	return first
}
