package witness_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/internal/witnesstest"
	"github.com/llmaudittrail/llmaudittrail/witness"
)

// cosigned records every cosignature the witness handed out and checks the
// invariants: one root per size, and growing cosignatures forming a single
// chain (each starting where the previous one ended: no rollback, no two
// winners from one state).
type cosigned struct {
	mu      sync.Mutex
	roots   map[uint64][]byte
	growths [][2]uint64 // (old, new) with new > old
}

func (c *cosigned) record(t *testing.T, old, size uint64, root []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.roots[size]; ok && !bytes.Equal(r, root) {
		t.Errorf("witness cosigned two roots for size %d: %x and %x", size, r, root)
	}
	c.roots[size] = root
	if size > old {
		c.growths = append(c.growths, [2]uint64{old, size})
	}
}

// checkChain checks that the growing cosignatures, sorted by new size, form
// one chain from start.
func (c *cosigned) checkChain(t *testing.T, start uint64) (end uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := slices.Clone(c.growths)
	slices.SortFunc(g, func(a, b [2]uint64) int { return int(a[1]) - int(b[1]) })
	end = start
	for _, step := range g {
		if step[0] != end {
			t.Errorf("cosigned %d -> %d, but the state was %d: two winners from one state, or a rollback (chain %v)", step[0], step[1], end, g)
			return end
		}
		end = step[1]
	}
	return end
}

func cosignedRoot(t *testing.T, body []byte) (size uint64, root []byte) {
	t.Helper()
	req, err := witness.ParseRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(req.Checkpoint), "\n", 4)
	size, err = strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	root, err = base64.StdEncoding.DecodeString(lines[2])
	if err != nil {
		t.Fatal(err)
	}
	return size, root
}

// TestConcurrentAddCheckpoint hammers one log with racing requests from
// two forks of the log (a log signing a split view) and with stale old
// sizes.
//
// Phase 1 lines the racers up: a hook holds every request that passed all
// checks just before its compare-and-swap until all racers of the round
// have either arrived there or been answered, then releases them together.
// Exactly one must win each round; the others must get 409 with the
// winner's size (lost the swap), 422 (proof from the other fork) or 409
// with the round's size (stale old size).
//
// Phase 2 lets goroutines race freely with random old sizes and forks.
//
// Throughout, every cosignature handed out is recorded: no size may have
// two cosigned roots, and the growing cosignatures must form one chain.
func TestConcurrentAddCheckpoint(t *testing.T) {
	const origin = "log.test/raced"
	const shared = 4 // entries common to both forks
	a := witnesstest.NewLog(t, origin)
	a.Append(shared)
	b := a.ForkAt(shared)
	a.Append(600)
	b.Append(600)
	forks := []*witnesstest.Log{a, b}

	tw := newTestWitness(t, a)
	seen := &cosigned{roots: make(map[uint64][]byte)}

	// The release barrier of the current round.
	var mu sync.Mutex
	var arrived chan struct{}
	var release chan struct{}
	witness.SetBeforeCommit(tw.w, func() {
		mu.Lock()
		arr, rel := arrived, release
		mu.Unlock()
		if arr == nil {
			return
		}
		arr <- struct{}{}
		<-rel
	})

	rng := rand.New(rand.NewPCG(1, 2))
	cur := uint64(0)
	curFork := -1 // fork of the stored state; -1 while within the shared prefix
	const rounds, perFork, stale = 25, 3, 3
	for round := range rounds {
		type racer struct {
			fork      int // -1 for stale requests
			old, size uint64
			body      []byte
		}
		desc := func(r racer) string { return fmt.Sprintf("[fork %d, old %d, size %d]", r.fork, r.old, r.size) }
		var racers []racer
		for f := range forks {
			sizes := rng.Perm(12)[:perFork]
			for _, d := range sizes {
				size := cur + uint64(d) + 1
				racers = append(racers, racer{fork: f, old: cur, size: size, body: forks[f].AddRequest(t, cur, size)})
			}
		}
		for range stale {
			old := cur + uint64(rng.IntN(5)) + 1 // ahead of the witness
			if cur > 0 && rng.IntN(2) == 0 {
				old = uint64(rng.IntN(int(cur))) // behind the witness
			}
			size := old + uint64(rng.IntN(5)) + 1
			racers = append(racers, racer{fork: -1, old: old, size: size, body: a.AddRequest(t, old, size)})
		}

		mu.Lock()
		arrived, release = make(chan struct{}), make(chan struct{})
		arr, rel := arrived, release
		mu.Unlock()

		results := make([]response, len(racers))
		done := make(chan struct{})
		for i, r := range racers {
			go func() {
				defer func() { done <- struct{}{} }()
				results[i] = tw.post(t, r.body)
			}()
		}
		waiting, finished := 0, 0
		for waiting+finished < len(racers) {
			select {
			case <-arr:
				waiting++
			case <-done:
				finished++
			}
		}
		close(rel)
		for finished < len(racers) {
			<-done
			finished++
		}
		mu.Lock()
		arrived, release = nil, nil
		mu.Unlock()

		winner := -1
		for i, res := range results {
			if res.status == http.StatusOK {
				if winner >= 0 {
					t.Fatalf("round %d: two winners from state %d: %s and %s", round, cur, desc(racers[winner]), desc(racers[i]))
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no winner from state %d: %+v", round, cur, results)
		}
		win := racers[winner]
		if win.fork < 0 {
			t.Fatalf("round %d: stale request won: %s", round, desc(win))
		}
		size, root := cosignedRoot(t, win.body)
		checkCosignature(t, tw.w.VerifierKey(), mustParse(t, win.body).Checkpoint, results[winner].body)
		seen.record(t, win.old, size, root)

		for i, res := range results {
			r := racers[i]
			valid := r.fork >= 0 && (curFork < 0 || r.fork == curFork)
			switch {
			case i == winner:
			case r.fork < 0:
				if want := fmt.Sprintf("%d\n", cur); res.status != 409 || res.body != want {
					t.Errorf("round %d: stale %s: %d %q, want 409 %q", round, desc(r), res.status, res.body, want)
				}
			case valid:
				if want := fmt.Sprintf("%d\n", win.size); res.status != 409 || res.body != want {
					t.Errorf("round %d: losing racer %s: %d %q, want 409 %q", round, desc(r), res.status, res.body, want)
				}
			default:
				if res.status != 422 {
					t.Errorf("round %d: other-fork racer %s: %d %q, want 422", round, desc(r), res.status, res.body)
				}
			}
		}

		if got := tw.get(t, origin); !strings.HasPrefix(got.body, fmt.Sprintf("%s\n%d\n", origin, win.size)) {
			t.Fatalf("round %d: stored checkpoint %q, want size %d", round, got.body, win.size)
		}
		cur = win.size
		if cur > shared {
			curFork = win.fork
		}
	}
	if end := seen.checkChain(t, 0); end != cur {
		t.Fatalf("chain ends at %d, state is %d", end, cur)
	}

	// Phase 2: free-running racers.
	start := cur
	maxSize := a.Size()
	var wg sync.WaitGroup
	for g := range 8 {
		rng := rand.New(rand.NewPCG(uint64(g), 99))
		wg.Go(func() {
			for range 40 {
				old := currentSize(t, tw, origin)
				if rng.IntN(4) == 0 && old > 0 {
					old -= uint64(rng.IntN(int(min(old, 3)))) + 1 // stale
				}
				size := min(old+uint64(rng.IntN(4)), maxSize)
				f := forks[rng.IntN(2)]
				body := f.AddRequest(t, old, size)
				res := tw.post(t, body)
				switch res.status {
				case http.StatusOK:
					s, root := cosignedRoot(t, body)
					seen.record(t, old, s, root)
				case http.StatusConflict, http.StatusUnprocessableEntity:
				default:
					t.Errorf("old %d size %d: unexpected %d %q", old, size, res.status, res.body)
				}
			}
		})
	}
	wg.Wait()
	end := seen.checkChain(t, 0)
	final := currentSize(t, tw, origin)
	if end != final {
		t.Errorf("chain of cosignatures ends at %d but the witness is at %d", end, final)
	}
	if final < start {
		t.Errorf("rolled back from %d to %d", start, final)
	}
	t.Logf("phase 1 reached size %d; phase 2 reached %d with %d growing cosignatures in total", start, final, len(seen.growths))
}

func currentSize(t *testing.T, tw *testWitness, origin string) uint64 {
	r := tw.get(t, origin)
	if r.status != 200 {
		t.Errorf("GET checkpoint: %d %q", r.status, r.body)
		return 0
	}
	lines := strings.SplitN(r.body, "\n", 3)
	n, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		t.Error(err)
	}
	return n
}

func mustParse(t *testing.T, body []byte) *witness.Request {
	t.Helper()
	req, err := witness.ParseRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
