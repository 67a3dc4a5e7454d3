// Package period is a calendar period (years, months, days) as retention
// floors and report deadlines are stated: "7y", "6m", "15d", "1y6m".
package period

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Period is a span of calendar years, months and days.
type Period struct{ Years, Months, Days int }

// Parse reads "7y", "6m", "30d" or a sum such as "1y6m".
func Parse(s string) (Period, error) {
	var p Period
	rest := strings.TrimSpace(s)
	if rest == "" {
		return p, errors.New("empty period")
	}
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return p, fmt.Errorf("period %q: want e.g. 7y, 6m, 30d", s)
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil || n > 1000 {
			return p, fmt.Errorf("period %q: number out of range", s)
		}
		switch rest[i] {
		case 'y':
			p.Years += n
		case 'm':
			p.Months += n
		case 'd':
			p.Days += n
		default:
			return p, fmt.Errorf("period %q: unit %q (want y, m or d)", s, rest[i])
		}
		rest = rest[i+1:]
	}
	return p, nil
}

func (p Period) String() string {
	var b strings.Builder
	for _, x := range []struct {
		n int
		u string
	}{{p.Years, "y"}, {p.Months, "m"}, {p.Days, "d"}} {
		if x.n > 0 {
			fmt.Fprintf(&b, "%d%s", x.n, x.u)
		}
	}
	if b.Len() == 0 {
		return "0d"
	}
	return b.String()
}

// End is when a record made at t leaves the floor.
func (p Period) End(t time.Time) time.Time { return t.AddDate(p.Years, p.Months, p.Days) }

// Longer reports whether p is longer than q (measured from one date).
func (p Period) Longer(q Period) bool {
	base := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	return p.End(base).After(q.End(base))
}
