package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	fmtlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// exportSeed is a well-formed export of session t/s, entries 1 and 3 of a
// tree of 5, and the key of its checkpoint.
func exportSeed(payloads bool) (note.Verifier, []byte) {
	skey, vkey, _ := checkpoint.GenerateKey("fuzz/log")
	signer, _ := checkpoint.NewSigner(skey)
	key, _ := checkpoint.NewVerifier(vkey)
	leaves := [][]byte{[]byte("a"), []byte(`{"v":2}`), []byte("c"), []byte(`{"v":2,"x":1}`), []byte("e")}
	hs := make([][]byte, len(leaves))
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng := rf.NewEmptyRange(0)
	for i, l := range leaves {
		hs[i] = event.LeafHash(l)
		rng.Append(hs[i], nil)
	}
	root, _ := rng.GetRootHash(nil)
	cp, _ := note.Sign(&note.Note{Text: string(fmtlog.Checkpoint{Origin: "fuzz/log", Size: 5, Hash: root}.Marshal())}, signer)
	nodes := func(begin, end uint64) [][]byte {
		r := rf.NewEmptyRange(begin)
		for i := begin; i < end; i++ {
			r.Append(hs[i], nil)
		}
		return r.Hashes()
	}
	seed := func(payloads bool) []byte {
		var b bytes.Buffer
		enc := api.NewExportEncoder(&b)
		to := uint64(1)
		h := &api.ExportHeader{Format: api.ExportFormat, Tenant: "t", Session: "s", Events: 2, ToSeq: &to, TreeSize: 5, Checkpoint: string(cp), Payloads: payloads}
		if payloads {
			h.Access = &api.EventResponse{Leaf: "YQ==", LeafHash: "022a6979e6dab7aa5ae4c3e5e45f7e977112a7e63593820dbec1ec738a24f93c"}
		}
		enc.Header(h)
		enc.Nodes(nodes(0, 1))
		ev := &api.ExportEvent{Index: 1, Leaf: leaves[1]}
		if payloads {
			ev.Status, ev.MediaType, ev.Salt, ev.Payload = api.PayloadOK, "text/plain", []byte("salt"), []byte("payload")
		}
		enc.Event(ev)
		enc.Nodes(nodes(2, 3))
		enc.Event(&api.ExportEvent{Index: 3, Leaf: leaves[3]})
		enc.Nodes(nodes(4, 5))
		enc.End(api.ExportEnd{Events: 2})
		enc.Flush()
		return b.Bytes()
	}
	return key, seed(payloads)
}

func TestExportSeedVerifies(t *testing.T) {
	for _, payloads := range []bool{false, true} {
		key, data := exportSeed(payloads)
		v := &exportVerifier{id: "s", q: ExportQuery{Payloads: payloads}, logKey: key}
		s, err := v.read(api.NewExportDecoder(bytes.NewReader(data)))
		if err != nil || len(s.Events) != 2 {
			t.Fatalf("payloads %v: %v", payloads, err)
		}
	}
}

// FuzzExportStream: no stream panics the reader, and what it accepts holds
// only the session's entries, in log order, inside the checkpoint's tree.
func FuzzExportStream(f *testing.F) {
	key, data := exportSeed(false)
	_, withPayloads := exportSeed(true)
	f.Add(data, false)
	f.Add(withPayloads, true)
	f.Fuzz(func(t *testing.T, data []byte, payloads bool) {
		v := &exportVerifier{id: "s", q: ExportQuery{Payloads: payloads}, logKey: key}
		s, err := v.read(api.NewExportDecoder(bytes.NewReader(data)))
		if err != nil {
			return
		}
		next := uint64(0)
		for _, e := range s.Events {
			if e.Index < next || e.Index >= s.Size || !bytes.Equal(e.LeafHash, event.LeafHash(e.Leaf)) {
				t.Fatalf("accepted entry %d after %d in a tree of %d", e.Index, next, s.Size)
			}
			if e.Index != 1 && e.Index != 3 {
				t.Fatalf("accepted entry %d, which is not the session's", e.Index)
			}
			next = e.Index + 1
		}
	})
}

// TestExportErrorFrame: a server that fails after the header says so in
// an error frame; the reader returns that error, matching its sentinel,
// and nothing of the export.
func TestExportErrorFrame(t *testing.T) {
	key, data := exportSeed(false)
	x := api.NewExportDecoder(bytes.NewReader(data))
	_, header, err := x.Next()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteByte(api.FrameHeader)
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(header))))
	b.Write(header)
	enc := api.NewExportEncoder(&b)
	enc.Error("unavailable", "the log's storage is unavailable, retry later")
	enc.Flush()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", api.ExportMediaType)
		w.Write(b.Bytes())
	}))
	defer ts.Close()
	c, _ := New(ts.URL)
	s, err := c.ExportSession(context.Background(), "s", ExportQuery{}, key, nil)
	var ae *Error
	if s != nil || !errors.As(err, &ae) || ae.Code != "unavailable" || !errors.Is(err, ErrOverloaded) {
		t.Fatalf("export = %v, %v; want the error frame's error", s, err)
	}
}
