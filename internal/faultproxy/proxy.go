package faultproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Mode is what the proxy does to a request or a connection.
type Mode uint8

// Modes, described in the package comment.
const (
	Pass Mode = iota
	Reset
	Stall
	Truncate
	Flip
	Status500
	Status503
	Drip
	Length
	Status403
	Status404
	Substitute
	numModes
)

var modeNames = [numModes]string{"pass", "reset", "stall", "truncate", "flip", "500", "503",
	"drip", "length", "403", "404", "substitute"}

// answers reports whether the proxy answers a request of mode m itself,
// without forwarding it.
func (m Mode) answers() bool {
	return m == Status500 || m == Status503 || m == Status403 || m == Status404
}

func (m Mode) String() string {
	if m < numModes {
		return modeNames[m]
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// Fault is the fault chosen for one request or connection.
type Fault struct {
	Mode Mode
	// After is the offset where Reset, Stall, Truncate and Flip act: in the
	// response body for a request, in the bytes sent for a connection.
	// Below zero picks one at random (within the body when its length is
	// known, else in the first 16 KiB).
	After int64
	For   time.Duration // how long a Stall lasts; the time between two bytes of a Drip
	// N is the number of bytes a Drip sends slowly (0: the whole rest),
	// and what a Length adds to the body's length in the Content-Length
	// header (below zero: it says less than is sent).
	N int64
	// Body is what a Substitute answers with: another object's bytes.
	Body []byte
}

func (f Fault) String() string {
	switch f.Mode {
	case Pass, Status500, Status503, Status403, Status404:
		return f.Mode.String()
	case Stall:
		return fmt.Sprintf("stall %v at %d", f.For, f.After)
	case Drip:
		return fmt.Sprintf("drip %d bytes %v apart at %d", f.N, f.For, f.After)
	case Length:
		return fmt.Sprintf("content-length %+d", f.N)
	case Substitute:
		return fmt.Sprintf("substitute %d bytes", len(f.Body))
	}
	return fmt.Sprintf("%s at %d", f.Mode, f.After)
}

// Request is what a Policy knows of a request.
type Request struct {
	Conn   int // connection number, from 1
	N      int // request number on the proxy, from 1
	Method string
	Path   string // the URL path, as sent
	// RangeStart and RangeEnd are the first and last byte of a
	// "Range: bytes=START-END" header; both -1 without one, RangeEnd -1
	// for an open range.
	RangeStart, RangeEnd int64
}

// RangeLen returns the bytes the request's range asks for, or -1 when
// unknown.
func (r Request) RangeLen() int64 {
	if r.RangeStart < 0 || r.RangeEnd < r.RangeStart {
		return -1
	}
	return r.RangeEnd - r.RangeStart + 1
}

// Policy picks the fault of one request. Policies are called one at a
// time, in the order requests arrive, with the proxy's seeded source.
type Policy func(r Request, rnd *rand.Rand) Fault

// ConnPolicy picks the fault of one connection (numbered from 1) when it is
// accepted.
type ConnPolicy func(conn int, rnd *rand.Rand) Fault

// Options of Start.
type Options struct {
	Upstream   string // host:port the proxy forwards to, e.g. MinIO's 127.0.0.1:PORT
	Seed       uint64
	Policy     Policy     // per request; nil passes every request
	ConnPolicy ConnPolicy // per connection; nil passes every connection
}

// Counts says what the proxy did. A fault is counted once per request (or
// connection) it was chosen for.
type Counts struct {
	Conns       int   `json:"conns"`
	Requests    int   `json:"requests"`
	Passed      int   `json:"passed"`
	Reset       int   `json:"reset"`
	Stalled     int   `json:"stalled"`
	Truncated   int   `json:"truncated"`
	Flipped     int   `json:"flipped"`
	Status500   int   `json:"status_500"`
	Status503   int   `json:"status_503"`
	Dripped     int   `json:"dripped"`
	Mislength   int   `json:"mislength"` // a wrong Content-Length
	Status403   int   `json:"status_403"`
	Status404   int   `json:"status_404"`
	Substituted int   `json:"substituted"`
	Sent        int64 `json:"sent"` // bytes sent back to clients
}

// Faults returns the number of faults done.
func (c Counts) Faults() int {
	return c.Reset + c.Stalled + c.Truncated + c.Flipped + c.Status500 + c.Status503 +
		c.Dripped + c.Mislength + c.Status403 + c.Status404 + c.Substituted
}

func (c Counts) String() string {
	s := fmt.Sprintf("%d connections, %d requests: %d passed, %d reset, %d stalled, %d truncated, %d with a flipped byte, %d answered 500, %d answered 503",
		c.Conns, c.Requests, c.Passed, c.Reset, c.Stalled, c.Truncated, c.Flipped, c.Status500, c.Status503)
	for _, x := range []struct {
		n    int
		what string
	}{{c.Dripped, "dripped"}, {c.Mislength, "with a wrong Content-Length"}, {c.Status403, "answered 403"},
		{c.Status404, "answered 404"}, {c.Substituted, "answered with another object's bytes"}} {
		if x.n > 0 {
			s += fmt.Sprintf(", %d %s", x.n, x.what)
		}
	}
	return s + fmt.Sprintf("; %d bytes sent", c.Sent)
}

func (c *Counts) add(m Mode) {
	switch m {
	case Pass:
		c.Passed++
	case Reset:
		c.Reset++
	case Stall:
		c.Stalled++
	case Truncate:
		c.Truncated++
	case Flip:
		c.Flipped++
	case Status500:
		c.Status500++
	case Status503:
		c.Status503++
	case Drip:
		c.Dripped++
	case Length:
		c.Mislength++
	case Status403:
		c.Status403++
	case Status404:
		c.Status404++
	case Substitute:
		c.Substituted++
	}
}

// Event is one fault done: to a request, or to a whole connection (then
// only Request.Conn is set).
type Event struct {
	Request
	Fault Fault
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	upstream string
	ln       net.Listener
	closing  chan struct{}
	wg       sync.WaitGroup

	mu         sync.Mutex
	rnd        *rand.Rand
	policy     Policy
	connPolicy ConnPolicy
	counts     Counts
	events     []Event
	conns      map[net.Conn]struct{}
	closed     bool
}

// Start listens on a free port of 127.0.0.1 and forwards to o.Upstream.
func Start(o Options) (*Proxy, error) {
	if o.Upstream == "" {
		return nil, errors.New("faultproxy: no upstream address")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{
		upstream: o.Upstream, ln: ln, closing: make(chan struct{}),
		rnd:    rand.New(rand.NewPCG(o.Seed, 0x6661756c74)),
		policy: o.Policy, connPolicy: o.ConnPolicy,
		conns: make(map[net.Conn]struct{}),
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns http://host:port, an endpoint for an S3 or HTTP client.
func (p *Proxy) URL() string { return "http://" + p.Addr() }

// SetPolicy replaces the request policy for the requests from now on.
func (p *Proxy) SetPolicy(f Policy) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.policy = f
}

// SetConnPolicy replaces the connection policy for the connections from
// now on.
func (p *Proxy) SetConnPolicy(f ConnPolicy) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.connPolicy = f
}

// Counts returns what the proxy has done so far.
func (p *Proxy) Counts() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts
}

// Events returns every fault done so far, in order.
func (p *Proxy) Events() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.events...)
}

// Close stops the proxy: it closes the listener and every connection, and
// waits for its goroutines (a stall in progress ends at once).
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.closing)
	err := p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go p.serve(c.(*net.TCPConn))
	}
}

// track registers c so that Close closes it; false when closing.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) forget(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	c.Close()
}

// sleep waits d, or less when the proxy closes.
func (p *Proxy) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.closing:
	}
}

// errCut ends a response on purpose (Reset, Truncate).
var errCut = errors.New("faultproxy: response cut")

// serve handles the requests of one client connection in turn, over one
// upstream connection of its own.
func (p *Proxy) serve(c *net.TCPConn) {
	defer p.wg.Done()
	defer p.forget(c)
	p.mu.Lock()
	p.counts.Conns++
	id := p.counts.Conns
	var cf Fault
	if p.connPolicy != nil {
		cf = p.connPolicy(id, p.rnd)
		if cf.After < 0 {
			cf.After = p.rnd.Int64N(16 << 10)
		}
		if cf.Mode != Pass {
			p.counts.add(cf.Mode)
			p.events = append(p.events, Event{Request: Request{Conn: id, RangeStart: -1, RangeEnd: -1}, Fault: cf})
		}
	}
	p.mu.Unlock()
	cw := &connWriter{c: c, f: cf, p: p}
	bw := bufio.NewWriterSize(cw, 32<<10)
	br := bufio.NewReader(c)
	up := &upstream{p: p}
	defer up.close()
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		keep := p.handle(id, req, c, bw, up, cf)
		if bw.Flush() != nil || !keep {
			return
		}
	}
}

// handle answers one request; it returns whether the connection stays open.
func (p *Proxy) handle(id int, req *http.Request, c *net.TCPConn, bw *bufio.Writer, up *upstream, cf Fault) bool {
	r := Request{Conn: id, Method: req.Method, Path: req.URL.Path}
	r.RangeStart, r.RangeEnd = parseRange(req.Header.Get("Range"))
	p.mu.Lock()
	p.counts.Requests++
	r.N = p.counts.Requests
	var f Fault
	byConn := cf.Mode.answers() // counted once for the connection
	switch {
	case byConn:
		f = cf
	case p.policy != nil:
		f = p.policy(r, p.rnd)
	}
	p.mu.Unlock()

	if f.Mode.answers() {
		if !byConn {
			p.record(r, f)
		}
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
		return answer(bw, req.Method, f.Mode) == nil && !req.Close
	}
	resp, err := up.roundTrip(req)
	if err != nil {
		answer(bw, req.Method, Status500) // the client sees a 5xx; the test sees the upstream's failure in the counts
		return false
	}
	defer resp.Body.Close()
	f = p.resolve(r, f, resp)
	switch f.Mode {
	case Length:
		return p.misLength(c, bw, up, resp, f)
	case Substitute:
		return substitute(bw, up, req, r, resp, f)
	case Pass:
	default:
		resp.Body = &faultBody{rc: resp.Body, f: f, p: p, flush: bw.Flush}
	}
	// Hiding bufio.Writer's ReadFrom makes Response.Write copy through
	// Write, so a stall can flush the buffer from inside the body's Read.
	err = resp.Write(struct{ io.Writer }{bw})
	if errors.Is(err, errCut) {
		bw.Flush()
		up.close() // its response was not read to the end
		if f.Mode == Reset {
			c.SetLinger(0)
		}
		c.Close()
		return false
	}
	if err != nil {
		up.close()
		return false
	}
	if resp.Close {
		up.close()
	}
	return !req.Close && !resp.Close
}

// misLength sends resp whole under a Content-Length that is f.N off. One
// that says more leaves the client waiting for bytes that never come: the
// connection stays open and silent until the client gives up on it (as
// behind a server that miscounted). One that says less leaves the rest of
// the body on the connection, which is closed after it.
func (p *Proxy) misLength(c *net.TCPConn, bw *bufio.Writer, up *upstream, resp *http.Response, f Fault) bool {
	err := writeHead(bw, resp, max(resp.ContentLength+f.N, 0))
	if err == nil {
		_, err = io.Copy(bw, resp.Body)
	}
	if err != nil {
		up.close()
		return false
	}
	if bw.Flush() == nil && f.N > 0 {
		io.Copy(io.Discard, c) // until the client or Close ends the connection
	}
	return false
}

// substitute answers with f.Body in place of the object's bytes, cut to the
// request's range as a server cuts its object (clipped at its end, 416
// past it), with the upstream's status and other headers.
func substitute(bw *bufio.Writer, up *upstream, req *http.Request, r Request, resp *http.Response, f Fault) bool {
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		up.close()
	}
	body, total := f.Body, int64(len(f.Body))
	h := resp.Header.Clone()
	if r.RangeStart >= 0 {
		if r.RangeStart >= total {
			return answer(bw, req.Method, rangeNotSatisfiable) == nil && !req.Close
		}
		end := r.RangeEnd
		if end < 0 || end >= total {
			end = total - 1
		}
		body = body[r.RangeStart : end+1]
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", r.RangeStart, end, total))
	}
	out := *resp
	out.Header = h
	if writeHead(bw, &out, int64(len(body))) != nil {
		return false
	}
	if req.Method != http.MethodHead {
		if _, err := bw.Write(body); err != nil {
			return false
		}
	}
	return !req.Close && !resp.Close
}

// writeHead writes resp's status line and headers, with a Content-Length
// of n.
func writeHead(w io.Writer, resp *http.Response, n int64) error {
	h := resp.Header.Clone()
	h.Del("Transfer-Encoding")
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	if _, err := fmt.Fprintf(w, "HTTP/%d.%d %s\r\n", resp.ProtoMajor, resp.ProtoMinor, resp.Status); err != nil {
		return err
	}
	if err := h.Write(w); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\r\n")
	return err
}

// resolve fixes a fault's offset once the response is known, counts it and
// records it. A fault that needs what the response lacks becomes a pass: a
// wrong length or another object's bytes need a successful answer with a
// body of known length.
func (p *Proxy) resolve(r Request, f Fault, resp *http.Response) Fault {
	n := resp.ContentLength // -1 when unknown
	ok := resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent
	p.mu.Lock()
	defer p.mu.Unlock()
	switch f.Mode {
	case Length:
		if !ok || n <= 0 || f.N == 0 {
			f = Fault{}
		}
	case Substitute:
		if !ok || f.Body == nil {
			f = Fault{}
		}
	case Reset, Truncate, Flip, Stall, Drip:
		if n == 0 && f.Mode != Stall {
			f = Fault{}
			break
		}
		if f.After < 0 {
			if n > 0 {
				f.After = p.rnd.Int64N(n)
			} else {
				f.After = p.rnd.Int64N(16 << 10)
			}
		}
		if n > 0 && f.Mode != Stall && f.Mode != Drip {
			f.After = min(f.After, n-1)
		} else if n >= 0 {
			f.After = min(f.After, n)
		}
	}
	p.counts.add(f.Mode)
	if f.Mode != Pass {
		p.events = append(p.events, Event{Request: r, Fault: f})
	}
	return f
}

func (p *Proxy) record(r Request, f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts.add(f.Mode)
	p.events = append(p.events, Event{Request: r, Fault: f})
}

// rangeNotSatisfiable is what substitute answers a range past the end of
// its bytes with; it is not a Mode of its own.
const rangeNotSatisfiable = numModes

// answer writes an S3-style error response of its own.
func answer(w io.Writer, method string, m Mode) error {
	var status int
	var code, msg string
	switch m {
	case Status500:
		status, code, msg = http.StatusInternalServerError, "InternalError", "We encountered an internal error, please try again."
	case Status403:
		status, code, msg = http.StatusForbidden, "AccessDenied", "Access Denied."
	case Status404:
		status, code, msg = http.StatusNotFound, "NoSuchKey", "The specified key does not exist."
	case rangeNotSatisfiable:
		status, code, msg = http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The requested range is not satisfiable"
	default:
		status, code, msg = http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate."
	}
	body := fmt.Sprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message><RequestId>faultproxy</RequestId></Error>", code, msg)
	_, err := fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n",
		status, http.StatusText(status), len(body))
	if err == nil && method != http.MethodHead {
		_, err = io.WriteString(w, body)
	}
	return err
}

// parseRange reads "bytes=START-END" or "bytes=START-"; anything else is
// (-1, -1).
func parseRange(h string) (start, end int64) {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return -1, -1
	}
	a, b, ok := strings.Cut(spec, "-")
	if !ok {
		return -1, -1
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 {
		return -1, -1
	}
	if b == "" {
		return start, -1
	}
	end, err = strconv.ParseInt(b, 10, 64)
	if err != nil || end < start {
		return -1, -1
	}
	return start, end
}

// upstream is the connection to the upstream server of one client
// connection, dialled when first needed and again after it closes.
type upstream struct {
	p  *Proxy
	c  net.Conn
	br *bufio.Reader
}

func (u *upstream) close() {
	if u.c != nil {
		u.p.forget(u.c)
		u.c, u.br = nil, nil
	}
}

// roundTrip forwards req and reads the response head. A request without a
// body is sent once more on a new connection when a kept-alive one turns
// out to be closed.
func (u *upstream) roundTrip(req *http.Request) (*http.Response, error) {
	for try := 0; ; try++ {
		fresh := u.c == nil
		if fresh {
			c, err := net.DialTimeout("tcp", u.p.upstream, 10*time.Second)
			if err != nil {
				return nil, fmt.Errorf("faultproxy: dial %s: %w", u.p.upstream, err)
			}
			if !u.p.track(c) {
				c.Close()
				return nil, errors.New("faultproxy: closed")
			}
			u.c, u.br = c, bufio.NewReader(c)
		}
		err := req.Write(u.c)
		if err == nil {
			var resp *http.Response
			if resp, err = http.ReadResponse(u.br, req); err == nil {
				return resp, nil
			}
		}
		u.close()
		if fresh || try > 0 || (req.Body != nil && req.Body != http.NoBody) {
			return nil, fmt.Errorf("faultproxy: forward %s %s: %w", req.Method, req.URL.Path, err)
		}
	}
}

// faultBody applies a request's fault to its response body.
type faultBody struct {
	rc    io.ReadCloser
	f     Fault
	p     *Proxy
	flush func() error
	n     int64 // body bytes read
	done  bool  // the stall or flip happened
}

func (b *faultBody) Read(q []byte) (int, error) {
	switch b.f.Mode {
	case Reset, Truncate:
		if b.n >= b.f.After {
			return 0, errCut
		}
		q = q[:min(int64(len(q)), b.f.After-b.n)]
	case Stall:
		if !b.done && b.n >= b.f.After {
			b.done = true
			if err := b.flush(); err != nil {
				return 0, err
			}
			b.p.sleep(b.f.For)
		} else if !b.done {
			q = q[:min(int64(len(q)), b.f.After-b.n)]
		}
	case Drip:
		switch {
		case b.n < b.f.After:
			q = q[:min(int64(len(q)), b.f.After-b.n)]
		case b.f.N == 0 || b.n < b.f.After+b.f.N:
			// One byte at a time, each sent before the wait for the next.
			if err := b.flush(); err != nil {
				return 0, err
			}
			b.p.sleep(b.f.For)
			q = q[:min(len(q), 1)]
		}
	}
	k, err := b.rc.Read(q)
	if b.f.Mode == Flip && !b.done && b.f.After >= b.n && b.f.After < b.n+int64(k) {
		q[b.f.After-b.n] ^= 0xff
		b.done = true
	}
	b.n += int64(k)
	return k, err
}

func (b *faultBody) Close() error { return b.rc.Close() }

// connWriter sends bytes to the client, applying a connection's fault and
// counting what it sent.
type connWriter struct {
	c       *net.TCPConn
	f       Fault
	p       *Proxy
	n       int64
	done    bool
	dripped int64
}

func (w *connWriter) Write(q []byte) (int, error) {
	sent := 0
	if !w.done && w.f.After < w.n+int64(len(q)) {
		k := int(max(w.f.After-w.n, 0))
		switch w.f.Mode {
		case Flip:
			w.done = true
			q = append([]byte(nil), q...)
			q[k] ^= 0xff
		case Stall:
			w.done = true
			m, err := w.send(q[:k])
			if err != nil {
				return m, err
			}
			w.p.sleep(w.f.For)
			sent, q = k, q[k:]
		case Reset, Truncate:
			w.done = true
			m, _ := w.send(q[:k])
			if w.f.Mode == Reset {
				w.c.SetLinger(0)
			}
			w.c.Close()
			return m, errCut
		case Drip:
			m, err := w.send(q[:k])
			if err != nil {
				return m, err
			}
			sent, q = k, q[k:]
			for len(q) > 0 && (w.f.N == 0 || w.dripped < w.f.N) {
				w.p.sleep(w.f.For)
				if _, err := w.send(q[:1]); err != nil {
					return sent, err
				}
				sent, q, w.dripped = sent+1, q[1:], w.dripped+1
			}
			w.done = w.f.N > 0 && w.dripped >= w.f.N
		}
	}
	m, err := w.send(q)
	return sent + m, err
}

func (w *connWriter) send(q []byte) (int, error) {
	m, err := w.c.Write(q)
	w.n += int64(m)
	w.p.mu.Lock()
	w.p.counts.Sent += int64(m)
	w.p.mu.Unlock()
	return m, err
}
