package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/capture"
	auditclient "github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/cli"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
)

const mcpWrapSynopsis = "log-server mcp wrap --url URL --token-file FILE [--session ID] [--name NAME] [--capture fail-closed|fail-open] -- COMMAND [ARGS...]"

func mcpCmd(args []string) int {
	if len(args) == 0 || args[0] != "wrap" {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
			fmt.Println("usage: " + mcpWrapSynopsis)
			return 0
		}
		fmt.Fprintln(os.Stderr, "usage: "+mcpWrapSynopsis)
		return 2
	}
	return mcpWrap(args[1:])
}

// maxMCPLine caps one stdio message.
const maxMCPLine = 4 << 20

// mcpWrap runs an MCP server as a child on its stdin and stdout and sends
// every JSON-RPC message through the log server's relay, which records it
// and says what to forward: the child never sees a tools/call the log
// has not recorded (fail-closed) or that the tool policy denies.
func mcpWrap(args []string) int {
	fs := cli.NewFlagSet("log-server mcp wrap", mcpWrapSynopsis)
	url := fs.String("url", "", "the log server's base URL (required)")
	tokenFile := fs.String("token-file", "", "file (0600) with the agent's audit token (write scope; required)")
	session := fs.String("session", "", "the audit session (default: a new one, printed on stderr)")
	name := fs.String("name", "", "the MCP server's name in the log (default: the command's base name)")
	mode := fs.String("capture", "fail-closed", "when the log cannot record a tools/call: fail-closed (the call is refused with a JSON-RPC error) or fail-open (it proceeds)")
	timeout := fs.Duration("record-timeout", 10*time.Second, "longest wait for the log server per message")
	caFile := fs.String("ca-file", "", "PEM file of certificate authorities to trust for an https --url, besides the system's")
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	cmdArgs := fs.Args()
	if len(cmdArgs) == 0 {
		return cli.Fail(fs, "no COMMAND given (after --)")
	}
	if *url == "" || *tokenFile == "" {
		return cli.Fail(fs, "--url and --token-file are required")
	}
	if *mode != "fail-closed" && *mode != "fail-open" {
		return cli.Fail(fs, "--capture: fail-closed or fail-open")
	}
	lc, err := cli.LogClient(*url, *tokenFile, *caFile, auditclient.WithTimeout(*timeout))
	if err != nil {
		return cli.Fail(fs, "%v", err)
	}
	if *session == "" {
		*session = "mcp-" + randomHex(8)
		fmt.Fprintf(os.Stderr, "log-server mcp wrap: audit session %s\n", *session)
	} else if !event.ValidID(*session) {
		return cli.Fail(fs, "--session: not a valid session id")
	} else if err := event.PermitSession(*session, event.Actor{}); err != nil {
		return cli.Fail(fs, "--session: %v", err)
	}
	if *name == "" {
		*name = filepath.Base(cmdArgs[0])
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	child := exec.Command(cmdArgs[0], cmdArgs[1:]...)
	child.Stderr = os.Stderr
	toChild, err := child.StdinPipe()
	if err != nil {
		return exit(err)
	}
	fromChild, err := child.StdoutPipe()
	if err != nil {
		return exit(err)
	}
	if err := child.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "log-server mcp wrap: starting %s: %v\n", cmdArgs[0], err)
		return 127
	}
	go func() { <-ctx.Done(); child.Process.Signal(syscall.SIGTERM) }()
	r := &relay{c: lc, conn: randomHex(12), server: *name, session: *session, failOpen: *mode == "fail-open", timeout: *timeout, linger: relayLinger}
	var out sync.Mutex
	writeOut := func(b []byte) {
		out.Lock()
		defer out.Unlock()
		os.Stdout.Write(append(bytes.TrimRight(b, "\n"), '\n'))
	}
	done := make(chan struct{})
	go func() { // the server's messages, to the client
		defer close(done)
		readLines(fromChild, func(line []byte) {
			if !strictjson.IsJSON(line) {
				// Not a message (a server's stray output): the relay could
				// not carry it, and it must not hold up the messages around
				// it. Passed on, counted as a gap.
				r.gap(1, errors.New("the server wrote a line that is not a JSON message; passed on, not recorded"))
				writeOut(line)
				return
			}
			// Queued for the log first (so that the client's next message,
			// which may follow at once, comes after it), then passed on
			// without waiting: a result cannot be unmade, and its record
			// goes with the client's next message or after the linger.
			r.queue(line)
			writeOut(line)
		})
	}()
	inDone := make(chan struct{})
	go func() { // the client's messages, to the server
		defer close(inDone)
		readLines(os.Stdin, func(line []byte) {
			if !strictjson.IsJSON(line) {
				// Not JSON: the server could only answer a parse error, and the
				// relay cannot carry it; refused here, in either mode.
				r.gap(1, errors.New("not a JSON message; refused"))
				writeOut(capture.RPCErrorReply(line, capture.RPCParseError, "LLMAuditTrail: not a JSON message; not forwarded"))
				return
			}
			res, err := r.client(line)
			switch {
			case err == nil:
				if res.Reply != nil {
					writeOut(res.Reply)
				}
				if res.Forward != nil {
					toChild.Write(append(bytes.TrimRight(res.Forward, "\n"), '\n'))
				}
			case !r.failOpen && capture.MustRecord(line):
				// A tools/call, or a message the capture could not read as the
				// server would: not without the log's say.
				writeOut(refusal(line, err))
			default:
				r.gap(1, err)
				toChild.Write(append(line, '\n'))
			}
		})
	}()
	select {
	case <-inDone: // the client is done: the server's stdin ends
		toChild.Close()
		<-done
	case <-done: // the server is gone (it exited, or a signal ended it)
	}
	// Every message of the server is queued once its stdout has ended: the
	// log gets them before the wrapper exits.
	r.flush(true)
	err = child.Wait()
	if g := r.gapCount(); g > 0 {
		fmt.Fprintf(os.Stderr, "log-server mcp wrap: %d message(s) could not be recorded\n", g)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "log-server mcp wrap: %v\n", err)
		return 1
	}
	return 0
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// readLines calls f with each newline-delimited message (the MCP stdio
// transport), without its newline.
func readLines(r io.Reader, f func([]byte)) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > maxMCPLine {
			fmt.Fprintf(os.Stderr, "log-server mcp wrap: a message of %d bytes is over the %d-byte limit; dropped\n", len(line), maxMCPLine)
			line = nil
		}
		if t := bytes.TrimRight(line, "\r\n"); len(bytes.TrimSpace(t)) > 0 {
			f(append([]byte(nil), t...))
		}
		if err != nil {
			return
		}
	}
}

// refusal answers a client message that was not forwarded because the log
// server could not observe it (fail-closed).
func refusal(line []byte, err error) []byte {
	return capture.RPCErrorReply(line, capture.RPCNotRecorded,
		"the audit log could not record this tool call, so it was not made: "+event.Clip(err.Error(), 200))
}

// relayLinger is how long a message of the server that the wrapper has
// passed on waits for the client's next message to travel with (one
// request instead of two) before it is sent on its own.
const relayLinger = 10 * time.Millisecond

// Tries of a request that carries only messages of the server, and the
// wait before the first retry (doubled each time).
const (
	relayTries   = 5
	relayBackoff = 50 * time.Millisecond
)

// Bounds of the messages of the server that go with one request.
const (
	maxEarlier      = 256
	maxEarlierBytes = 1 << 20
)

// relay sends messages to the log server's relay, one request at a time,
// in the order the wrapper read them. A message of the client waits for
// its answer (forward it, or answer the client); a message of the server
// is passed on at once and queued, and goes to the log with the client's
// next message or, after the linger, on its own, tried again until it is
// recorded (relayTries), and before the wrapper exits.
type relay struct {
	c                     *auditclient.Client
	conn, server, session string
	failOpen              bool
	timeout, linger       time.Duration

	send sync.Mutex // held while a request is in flight; taken before mu
	last uint64     // the number of the last message numbered (under send)

	mu     sync.Mutex
	queued []queuedMsg // of the server, not yet in the log, oldest first
	armed  bool        // a flush is scheduled
	tries  int         // failed tries of the oldest queued
	gaps   int
}

// queuedMsg is a message of the server waiting for the log; n is its
// number on the connection once it has been sent (0 before).
type queuedMsg struct {
	n   uint64
	msg []byte
}

func (r *relay) gap(n int, err error) {
	r.mu.Lock()
	r.gaps += n
	r.mu.Unlock()
	fmt.Fprintf(os.Stderr, "log-server mcp wrap: %d message(s) not recorded: %v\n", n, err)
}

func (r *relay) gapCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gaps
}

// queue adds a message of the server; it never waits for the log.
func (r *relay) queue(msg []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queued = append(r.queued, queuedMsg{msg: msg})
	if !r.armed {
		r.armed = true
		time.AfterFunc(r.linger, func() { r.flush(false) })
	}
}

// take removes what goes with the next request from the queue: the oldest
// queued messages whose numbers follow on (a message sent before keeps
// its number, so only messages sent together before can go together
// again), within the bounds; more reports whether any is left.
func (r *relay) take() (batch []queuedMsg, more bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	size := 0
	for i, q := range r.queued {
		if i > 0 && (len(batch) >= maxEarlier || size+len(q.msg) > maxEarlierBytes) {
			break
		}
		if i > 0 && q.n != 0 && q.n != batch[i-1].n+1 || i > 0 && q.n == 0 && batch[i-1].n != 0 && batch[i-1].n != r.last {
			break
		}
		batch, size = append(batch, q), size+len(q.msg)
	}
	r.queued = r.queued[len(batch):]
	return batch, len(r.queued) > 0
}

// bytesOf is the size of batch's messages.
func bytesOf(batch []queuedMsg) int {
	n := 0
	for _, q := range batch {
		n += len(q.msg)
	}
	return n
}

// number gives the messages of batch not yet numbered the next numbers
// (under send); it returns the number of the first.
func (r *relay) number(batch []queuedMsg) uint64 {
	for i := range batch {
		if batch[i].n == 0 {
			r.last++
			batch[i].n = r.last
		}
	}
	if len(batch) == 0 {
		return r.last + 1
	}
	return batch[0].n
}

// requeue puts back a batch that the log server did not take (its
// request failed), before whatever was queued since, for the next try; a
// batch that failed relayTries times, or that the log server refused, is
// given up and counted as a gap.
func (r *relay) requeue(batch []queuedMsg, err error) {
	var ae *auditclient.Error
	refused := errors.As(err, &ae) && ae.StatusCode >= 400 && ae.StatusCode < 500 && ae.StatusCode != 408 && ae.StatusCode != 429
	r.mu.Lock()
	r.tries++
	if refused || r.tries >= relayTries {
		r.tries = 0
		r.mu.Unlock()
		r.gap(len(batch), err)
		return
	}
	r.queued = append(batch, r.queued...)
	r.mu.Unlock()
}

// backoff is the wait before the next try of the oldest queued message.
func (r *relay) backoff() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tries == 0 {
		return 0
	}
	return relayBackoff << (r.tries - 1)
}

// flush sends the queued messages of the server: once, with a retry
// scheduled if it fails (the linger's call), or (final) until the queue
// is empty or given up, waiting between tries.
func (r *relay) flush(final bool) {
	r.send.Lock()
	defer r.send.Unlock()
	r.mu.Lock()
	r.armed = false
	r.mu.Unlock()
	for {
		batch, _ := r.take()
		if len(batch) == 0 {
			return
		}
		if r.sendAlone(batch) == nil {
			continue
		}
		if !final {
			r.retryLater()
			return
		}
		time.Sleep(r.backoff())
	}
}

// client sends a message of the client, with the queued messages of the
// server before it, and returns the log server's answer. Nothing
// overtakes a message of the server: when those queued before cannot be
// sent, neither is the client's message (it fails with their error).
func (r *relay) client(msg []byte) (*api.MCPRelayResponse, error) {
	r.send.Lock()
	defer r.send.Unlock()
	for {
		batch, more := r.take()
		if len(batch) > 0 && (more || batch[len(batch)-1].n != 0 && batch[len(batch)-1].n != r.last || bytesOf(batch)+len(msg) > maxEarlierBytes) {
			// More than one request holds, or numbered before with a
			// message after them that is not queued, or too large to go
			// with the client's message within the log server's body
			// limit: on their own first.
			if err := r.sendAlone(batch); err != nil {
				r.retryLater()
				return nil, fmt.Errorf("the server's earlier messages are not recorded yet: %w", err)
			}
			continue
		}
		seq := r.number(batch)
		r.last++ // the client's message
		earlier := make([]json.RawMessage, len(batch))
		for i, q := range batch {
			earlier[i] = q.msg
		}
		res, err := r.post(api.MCPRelayRequest{From: "client", Message: msg, Earlier: earlier, Seq: seq})
		if err != nil && len(batch) > 0 {
			r.requeue(batch, err)
			r.retryLater()
		}
		return res, err
	}
}

// retryLater schedules a flush of what is queued after the backoff.
func (r *relay) retryLater() {
	wait := r.backoff()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queued) > 0 && !r.armed {
		r.armed = true
		time.AfterFunc(wait, func() { r.flush(false) })
	}
}

// sendAlone sends batch (messages of the server) in a request of its own
// (under send); when it fails the batch is queued again or given up
// (requeue).
func (r *relay) sendAlone(batch []queuedMsg) error {
	seq := r.number(batch)
	earlier := make([]json.RawMessage, 0, len(batch)-1)
	for _, q := range batch[:len(batch)-1] {
		earlier = append(earlier, q.msg)
	}
	_, err := r.post(api.MCPRelayRequest{From: "server", Message: batch[len(batch)-1].msg, Earlier: earlier, Seq: seq})
	if err != nil {
		r.requeue(batch, err)
	} else {
		r.mu.Lock()
		r.tries = 0
		r.mu.Unlock()
	}
	return err
}

func (r *relay) post(req api.MCPRelayRequest) (*api.MCPRelayResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	req.Conn, req.Server, req.Session = r.conn, r.server, r.session
	return r.c.RelayMCP(ctx, req)
}
