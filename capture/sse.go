package capture

import "bytes"

// sseEvent is one dispatched server-sent event.
type sseEvent struct {
	Type string // the event: field, "" when absent
	Data []byte // data: lines joined with "\n"
}

// sseScanner splits a text/event-stream into events incrementally, as chunks
// arrive, following the WHATWG event-stream rules (LF, CRLF or CR line ends;
// comments and unknown fields ignored). It never holds more than maxEvent
// bytes: a longer line or event is skipped whole and counted in dropped. It
// never fails; what it cannot parse it skips.
type sseScanner struct {
	maxEvent int
	line     []byte
	lastCR   bool // the previous chunk ended with '\r'
	overflow bool // skipping the rest of an oversized line
	skipping bool // skipping the rest of an oversized event
	evType   string
	data     []byte
	hasData  bool
	dropped  int
	emit     func(sseEvent)
}

func newSSEScanner(maxEvent int, emit func(sseEvent)) *sseScanner {
	return &sseScanner{maxEvent: maxEvent, emit: emit}
}

// Write feeds a chunk of the stream.
func (s *sseScanner) Write(p []byte) {
	if s.lastCR && len(p) > 0 && p[0] == '\n' {
		p = p[1:]
	}
	s.lastCR = false
	for len(p) > 0 {
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			s.appendLine(p)
			return
		}
		s.appendLine(p[:i])
		s.endLine()
		if p[i] == '\r' {
			if i+1 < len(p) && p[i+1] == '\n' {
				i++
			} else if i+1 == len(p) {
				s.lastCR = true
			}
		}
		p = p[i+1:]
	}
}

func (s *sseScanner) appendLine(p []byte) {
	if s.overflow {
		return
	}
	if len(s.line)+len(p) > s.maxEvent {
		s.overflow, s.line = true, s.line[:0]
		return
	}
	s.line = append(s.line, p...)
}

func (s *sseScanner) endLine() {
	line := s.line
	s.line = s.line[:0]
	if s.overflow {
		s.overflow, s.skipping = false, true
		return
	}
	if len(line) == 0 {
		s.dispatch()
		return
	}
	if s.skipping || line[0] == ':' {
		return
	}
	name, value, found := bytes.Cut(line, []byte(":"))
	if found && len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	switch string(name) {
	case "event":
		s.evType = string(value)
	case "data":
		if len(s.data)+len(value)+1 > s.maxEvent {
			s.skipping = true
			return
		}
		if s.hasData {
			s.data = append(s.data, '\n')
		}
		s.data = append(s.data, value...)
		s.hasData = true
	}
}

func (s *sseScanner) dispatch() {
	if s.skipping {
		s.dropped++
	} else if s.hasData {
		s.emit(sseEvent{Type: s.evType, Data: s.data})
	}
	s.evType, s.data, s.hasData, s.skipping = "", s.data[:0], false, false
}
