package strictjson

// Cursor is a position in JSON for the hand-written readers of a common
// shape (an event's request, a write's answer, a payload's fields), which
// leave anything else to encoding/json: B is the JSON, I the next byte.
type Cursor struct {
	B []byte
	I int
}

// WS moves past white space.
func (c *Cursor) WS() {
	for c.I < len(c.B) {
		switch c.B[c.I] {
		case ' ', '\t', '\n', '\r':
			c.I++
		default:
			return
		}
	}
}

// Next moves past b if it is the next byte.
func (c *Cursor) Next(b byte) bool {
	if c.I < len(c.B) && c.B[c.I] == b {
		c.I++
		return true
	}
	return false
}

// End reports whether nothing but white space follows.
func (c *Cursor) End() bool {
	c.WS()
	return c.I == len(c.B)
}
