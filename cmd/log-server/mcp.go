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
	r := &relay{c: lc, conn: randomHex(12), server: *name, session: *session, failOpen: *mode == "fail-open", timeout: *timeout}
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
			if _, err := r.send("server", line); err != nil {
				r.gap(err)
			}
			writeOut(line) // a result cannot be unmade: it goes on whatever the log said
		})
	}()
	readLines(os.Stdin, func(line []byte) { // the client's messages, to the server
		if !json.Valid(line) {
			// Not JSON: the server could only answer a parse error, and the
			// relay cannot carry it; refused here, in either mode.
			r.gap(errors.New("not a JSON message; refused"))
			writeOut(capture.RPCErrorReply(line, capture.RPCParseError, "LLMAuditTrail: not a JSON message; not forwarded"))
			return
		}
		res, err := r.send("client", line)
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
			r.gap(err)
			toChild.Write(append(line, '\n'))
		}
	})
	toChild.Close()
	<-done
	err = child.Wait()
	if r.gaps > 0 {
		fmt.Fprintf(os.Stderr, "log-server mcp wrap: %d message(s) could not be recorded\n", r.gaps)
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

// relay sends messages to the log server's relay.
type relay struct {
	c                     *auditclient.Client
	conn, server, session string
	failOpen              bool
	timeout               time.Duration
	mu                    sync.Mutex
	gaps                  int
}

func (r *relay) gap(err error) {
	r.mu.Lock()
	r.gaps++
	r.mu.Unlock()
	fmt.Fprintf(os.Stderr, "log-server mcp wrap: not recorded: %v\n", err)
}

func (r *relay) send(from string, msg []byte) (*api.MCPRelayResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	return r.c.RelayMCP(ctx, api.MCPRelayRequest{Conn: r.conn, Server: r.server, Session: r.session, From: from, Message: msg})
}
