package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/cli"
	"github.com/llmaudittrail/llmaudittrail/replay"
)

func step(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("replay step", "replay step SESSION --url URL --log-key FILE --token-file FILE [--witness-policy FILE]")
	c := commonFlags(fs)
	session, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := c.rebuild(ctx, session, stderr, false)
	if err != nil {
		return fail("%v", err)
	}
	if len(s.Events) == 0 {
		return fail("session %s has no events", session)
	}
	m := &stepper{s: s, tl: replay.NewTimeline(s), height: 40, width: 120}
	if _, err := tea.NewProgram(m, tea.WithAltScreen(), tea.WithContext(ctx)).Run(); err != nil && ctx.Err() == nil {
		return fail("%v", err)
	}
	if !s.Verified() {
		return 1
	}
	return 0
}

// stepper is the step-through view: one event at a time, its verification
// state, attributes and payload.
type stepper struct {
	s             *replay.Session
	tl            *replay.Timeline
	cur           int // position in s.Events
	scroll        int // first line of the detail shown
	width, height int
	status        string
}

func (m *stepper) Init() tea.Cmd { return nil }

// jumps are the keys that move to the next (lower case) or previous (upper
// case) event of a kind.
var jumps = map[string]struct {
	what string
	is   func(e *replay.Event) bool
}{
	"c": {"call", func(e *replay.Event) bool { return e.Leaf != nil && e.Leaf.Kind == event.KindLLMRequest }},
	"t": {"tool call", func(e *replay.Event) bool { return e.Leaf != nil && e.Leaf.Kind == event.KindToolCall }},
	"s": {"signature", func(e *replay.Event) bool { return e.Leaf != nil && e.Leaf.Kind == event.KindHumanSignature }},
	"e": {"error or problem", func(e *replay.Event) bool {
		if !e.Verified() || e.Leaf == nil {
			return true
		}
		_, errType := e.Leaf.Attributes[event.AttrErrorType]
		return errType || e.Leaf.Kind == event.KindCaptureGap
	}},
}

func (m *stepper) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tea.KeyMsg:
		k := msg.String()
		m.status = ""
		switch k {
		case "q", "ctrl+c", "esc":
			return m, tea.Quit
		case "down", "j", "right", "l", "enter":
			m.move(m.cur + 1)
		case "up", "k", "left", "h":
			m.move(m.cur - 1)
		case "g", "home":
			m.move(0)
		case "G", "end":
			m.move(len(m.s.Events) - 1)
		case " ", "pgdown":
			m.scroll += max(1, m.height-8)
		case "b", "pgup":
			m.scroll = max(0, m.scroll-max(1, m.height-8))
		default:
			lower := strings.ToLower(k)
			if j, ok := jumps[lower]; ok {
				dir := 1
				if k != lower {
					dir = -1
				}
				for i := m.cur + dir; i >= 0 && i < len(m.s.Events); i += dir {
					if j.is(m.s.Events[i]) {
						m.move(i)
						return m, nil
					}
				}
				m.status = "no " + map[int]string{1: "later", -1: "earlier"}[dir] + " " + j.what
			}
		}
	}
	return m, nil
}

func (m *stepper) move(i int) {
	if i >= 0 && i < len(m.s.Events) {
		m.cur, m.scroll = i, 0
	}
}

func (m *stepper) stepOf(index uint64) *replay.Step {
	for i := range m.tl.Steps {
		for _, x := range m.tl.Steps[i].Events {
			if x == index {
				return &m.tl.Steps[i]
			}
		}
	}
	return nil
}

func (m *stepper) View() string {
	e := m.s.Events[m.cur]
	var b strings.Builder
	state := "verified"
	if !e.Verified() {
		state = "FAILED"
	}
	kind := "?"
	if e.Leaf != nil {
		kind = e.Leaf.Kind
	}
	fmt.Fprintf(&b, "session %s  event %d/%d  entry %d  seq %d  %s  [%s]\n", event.SafeText(m.s.ID), m.cur+1, len(m.s.Events), e.Index, e.Seq,
		event.SafeText(kind), state)
	if st := m.stepOf(e.Index); st != nil {
		fmt.Fprintf(&b, "step %d: %s\n", st.N, clipLine(event.SafeText(st.Summary), m.width))
	}
	b.WriteString(strings.Repeat("─", min(m.width, 120)) + "\n")
	var lines []string
	for _, p := range e.Problems {
		lines = append(lines, "PROBLEM "+event.SafeText(p.String()))
	}
	if e.Leaf != nil {
		lines = append(lines, fmt.Sprintf("time %s  actor %s %s", e.Leaf.Time, event.SafeText(e.Leaf.Actor.Type), event.SafeText(e.Leaf.Actor.ID)))
		keys := make([]string, 0, len(e.Leaf.Attributes))
		for k := range e.Leaf.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			lines = append(lines, fmt.Sprintf("  %s = %s", event.SafeText(k), event.SafeText(fmt.Sprint(e.Leaf.Attributes[k]))))
		}
	}
	lines = append(lines, "")
	switch {
	case e.PayloadStatus == api.PayloadOK:
		if text, ok := replay.AssembledText(e.Payload); ok && e.Leaf != nil && e.Leaf.Kind == event.KindLLMResponse {
			lines = append(lines, "assembled text:")
			for _, l := range strings.Split(text, "\n") {
				lines = append(lines, "  "+event.SafeText(l))
			}
			lines = append(lines, "")
		}
		lines = append(lines, fmt.Sprintf("payload (%s, %d bytes, opens its commitment):", event.SafeText(e.MediaType), len(e.Payload)))
		for _, l := range strings.Split(replay.Pretty(e.Payload), "\n") {
			lines = append(lines, "  "+event.SafeText(l))
		}
	case e.Leaf != nil && e.Leaf.Payload == nil:
		lines = append(lines, "no payload")
	default:
		lines = append(lines, "payload: "+e.PayloadStatus)
	}
	body := max(1, m.height-6)
	m.scroll = min(m.scroll, max(0, len(lines)-body))
	for _, l := range lines[m.scroll:min(len(lines), m.scroll+body)] {
		b.WriteString(clipLine(l, m.width) + "\n")
	}
	b.WriteString(strings.Repeat("─", min(m.width, 120)) + "\n")
	help := "j/k move  c/t/s/e next call/tool call/signature/error (C/T/S/E back)  space/b scroll  g/G first/last  q quit"
	if m.status != "" {
		help = m.status
	}
	b.WriteString(clipLine(help, m.width))
	return b.String()
}

func clipLine(s string, w int) string {
	r := []rune(s)
	if w > 1 && len(r) > w {
		return string(r[:w-1]) + "…"
	}
	return s
}
