package qemu

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// tailLines is how many console lines an error quotes.
const tailLines = 30

// maxQuotedLine caps each quoted line: a GRUB menu drawn with cursor moves
// can make one very long line.
const maxQuotedLine = 240

// console collects the cleaned serial output of one guest and matches
// patterns against it. Text only ever grows, so slices of it stay valid
// after the lock is released.
type console struct {
	name   string
	log    io.Writer // cleaned output, may be nil
	rawLog io.Writer // bytes as QEMU wrote them, may be nil

	mu      sync.Mutex
	strip   stripper
	text    []byte
	cursor  int           // everything before it has been consumed by a match
	changed chan struct{} // closed and replaced whenever text grows or the guest ends
	ended   bool
	reason  string // why the console ended, for errors
}

func newConsole(name string, log, rawLog io.Writer) *console {
	return &console{name: name, log: log, rawLog: rawLog, changed: make(chan struct{})}
}

// Write takes raw bytes from QEMU's stdout. It never fails: a broken log
// writer must not stall the guest.
func (c *console) Write(p []byte) (int, error) {
	if c.rawLog != nil {
		c.rawLog.Write(p) //nolint:errcheck // logging is best effort
	}
	c.mu.Lock()
	start := len(c.text)
	c.text = c.strip.append(c.text, p)
	clean := c.text[start:]
	if len(clean) > 0 {
		close(c.changed)
		c.changed = make(chan struct{})
	}
	c.mu.Unlock()
	if c.log != nil && len(clean) > 0 {
		c.log.Write(clean) //nolint:errcheck // logging is best effort
	}
	return len(p), nil
}

// end records that no more output will come, and why.
func (c *console) end(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return
	}
	c.ended = true
	c.reason = reason
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.text)
}

// expect waits until one of patterns matches a line of the unconsumed
// console. Among matches in the same line the leftmost wins, then the
// lowest index. It returns the whole line holding the match (including any
// part consumed earlier) and moves the cursor to the end of the match.
func (c *console) expect(timeout time.Duration, patterns ...string) (int, string, error) {
	if len(patterns) == 0 {
		return -1, "", fmt.Errorf("%s: expect: no pattern given", c.name)
	}
	res := make([]*regexp.Regexp, len(patterns))
	for i, p := range patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return -1, "", fmt.Errorf("%s: expect: %w", c.name, err)
		}
		res[i] = re
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()

	c.mu.Lock()
	from := c.cursor // complete lines before from were already searched by this call
	for {
		idx, start, end, next := matchLines(c.text, from, res)
		if idx >= 0 {
			c.cursor = end
			line := lineAround(c.text, start)
			c.mu.Unlock()
			return idx, line, nil
		}
		from = next
		if c.ended {
			err := fmt.Errorf("%s: %w before the console matched %s (%s); %s",
				c.name, ErrExited, describe(patterns), c.reason, c.tailLocked(tailLines))
			c.mu.Unlock()
			return -1, "", err
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			c.mu.Lock()
			// Output that raced with the timer still counts.
			idx, start, end, _ := matchLines(c.text, from, res)
			if idx >= 0 {
				c.cursor = end
				line := lineAround(c.text, start)
				c.mu.Unlock()
				return idx, line, nil
			}
			err := fmt.Errorf("%s: %w: no console line matched %s within %v; %s",
				c.name, ErrTimeout, describe(patterns), timeout, c.tailLocked(tailLines))
			c.mu.Unlock()
			return -1, "", err
		}
		c.mu.Lock()
	}
}

// matchLines searches text[from:] line by line, the last unfinished line
// included. It returns the pattern index and the match's offsets in text,
// or idx -1 and the offset of the unfinished line, where the next search
// has to start again.
func matchLines(text []byte, from int, res []*regexp.Regexp) (idx, start, end, next int) {
	pos := from
	for {
		seg := text[pos:]
		nl := bytes.IndexByte(seg, '\n')
		if nl >= 0 {
			seg = seg[:nl]
		}
		if nl >= 0 || len(seg) > 0 {
			best, bestLoc := -1, []int(nil)
			for i, re := range res {
				loc := re.FindIndex(seg)
				if loc != nil && (best < 0 || loc[0] < bestLoc[0]) {
					best, bestLoc = i, loc
				}
			}
			if best >= 0 {
				return best, pos + bestLoc[0], pos + bestLoc[1], pos
			}
		}
		if nl < 0 {
			return -1, 0, 0, pos
		}
		pos += nl + 1
	}
}

// lineAround returns the line of text that holds offset off.
func lineAround(text []byte, off int) string {
	start := bytes.LastIndexByte(text[:off], '\n') + 1
	end := len(text)
	if nl := bytes.IndexByte(text[off:], '\n'); nl >= 0 {
		end = off + nl
	}
	return string(text[start:end])
}

// tailLocked quotes the last n lines of the console for an error message.
func (c *console) tailLocked(n int) string {
	text := strings.TrimSuffix(string(c.text), "\n")
	if text == "" {
		return "the console is empty"
	}
	lines := strings.Split(text, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "last %d console lines:", len(lines))
	for _, l := range lines {
		if len(l) > maxQuotedLine {
			l = l[:maxQuotedLine] + "…"
		}
		b.WriteString("\n    | ")
		b.WriteString(l)
	}
	return b.String()
}

func (c *console) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tailLocked(n)
}

func describe(patterns []string) string {
	if len(patterns) == 1 {
		return fmt.Sprintf("%q", patterns[0])
	}
	q := make([]string, len(patterns))
	for i, p := range patterns {
		q[i] = fmt.Sprintf("%q", p)
	}
	return "any of " + strings.Join(q, ", ")
}

// stripper removes carriage returns, control characters and ANSI escape
// sequences from a byte stream that may split a sequence across writes.
type stripper struct {
	state    int
	oscBytes int // length of the current string sequence, to recover from a stray ESC ]
}

const (
	stNormal  = iota
	stEsc     // after ESC
	stCSI     // after ESC [
	stString  // after ESC ] (OSC) or ESC P/X/^/_ , until BEL or ESC \
	stStrEsc  // ESC inside a string sequence
	stOneMore // after ESC ( and friends: one more byte belongs to the sequence
)

// maxStringSeq bounds a string sequence: a stray ESC ] must not swallow the
// rest of the console.
const maxStringSeq = 512

func (s *stripper) append(dst, p []byte) []byte {
	for _, b := range p {
		switch s.state {
		case stNormal:
			switch {
			case b == 0x1b:
				s.state = stEsc
			case b == '\n' || b == '\t' || (b >= 0x20 && b != 0x7f):
				dst = append(dst, b)
			}
			// \r and the other control characters are dropped.
		case stEsc:
			switch {
			case b == '[':
				s.state = stCSI
			case b == ']' || b == 'P' || b == 'X' || b == '^' || b == '_':
				s.state, s.oscBytes = stString, 0
			case b >= 0x20 && b <= 0x2f: // ESC ( B, ESC # 8, ...
				s.state = stOneMore
			default: // two-byte sequences: ESC c, ESC 7, ESC =, ...
				s.state = stNormal
			}
		case stCSI:
			switch {
			case b >= 0x20 && b <= 0x3f: // parameters and intermediates
			case b >= 0x40 && b <= 0x7e:
				s.state = stNormal
				// A cursor move to another row ends the line on screen.
				if (b == 'H' || b == 'f' || b == 'd') && len(dst) > 0 && dst[len(dst)-1] != '\n' {
					dst = append(dst, '\n')
				}
			default: // broken sequence: drop it, keep the byte
				s.state = stNormal
				if b == '\n' || b == '\t' || b >= 0x80 {
					dst = append(dst, b)
				}
			}
		case stString:
			s.oscBytes++
			switch {
			case b == 0x07:
				s.state = stNormal
			case b == 0x1b:
				s.state = stStrEsc
			case s.oscBytes > maxStringSeq:
				s.state = stNormal
			}
		case stStrEsc:
			if b == '\\' {
				s.state = stNormal
			} else {
				s.state = stString
			}
		case stOneMore:
			s.state = stNormal
		}
	}
	return dst
}
