package lab

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// Forwarder is the host end of QEMU's guestfwd for an HTTP server such as
// MinIO. A guestfwd rule to tcp:127.0.0.1:PORT is a character device that
// QEMU connects once, at start: every guest connection to the forwarded
// address is spliced onto that one byte stream, and once the server closes
// it (an idle timeout, or a server that closes after each response) the
// guest can reach nothing more until QEMU restarts. The Forwarder keeps that
// stream open for QEMU's whole life: it reads HTTP/1.1 requests one after
// another from it and sends each to the target with a client of its own,
// writing the responses back in order. So guest connections work as long as
// they come one at a time, which is how the updater talks to its store.
type Forwarder struct {
	ln        net.Listener
	target    *url.URL
	transport *http.Transport

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// Forward starts a Forwarder on a free port of 127.0.0.1 to target, an
// http://127.0.0.1:PORT URL (the project's rule: no traffic leaves the host).
func Forward(target string) (*Forwarder, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("forward to %s: %w", target, err)
	}
	if u.Scheme != "http" || u.Hostname() != "127.0.0.1" {
		return nil, fmt.Errorf("forward to %s: want http://127.0.0.1:PORT", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("forward to %s: %w", target, err)
	}
	f := &Forwarder{ln: ln, target: u, conns: map[net.Conn]bool{},
		// Bytes pass through as the server sent them: no transparent gzip.
		transport: &http.Transport{DisableCompression: true, Proxy: nil}}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

// Port is the 127.0.0.1 port a guestfwd rule leads to.
func (f *Forwarder) Port() int { return f.ln.Addr().(*net.TCPAddr).Port }

// GuestFwd returns the netdev option forwarding guestAddr (such as
// 10.0.2.100:9000) to the Forwarder.
func (f *Forwarder) GuestFwd(guestAddr string) string {
	return "guestfwd=tcp:" + guestAddr + "-tcp:127.0.0.1:" + strconv.Itoa(f.Port())
}

// Close stops listening, closes the streams of every QEMU still connected
// and waits for them.
func (f *Forwarder) Close() error {
	err := f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	f.transport.CloseIdleConnections()
	return err
}

func (f *Forwarder) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns[c] = true
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.serve(c)
			f.mu.Lock()
			delete(f.conns, c)
			f.mu.Unlock()
			c.Close()
		}()
	}
}

// serve forwards the requests of one QEMU's stream until QEMU closes it.
func (f *Forwarder) serve(c net.Conn) {
	br := bufio.NewReader(c)
	bw := bufio.NewWriter(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		resp := f.roundTrip(req)
		// Whatever the guest said about its connection, this stream stays
		// open: it is the only one QEMU has.
		err = resp.Write(bw)
		resp.Body.Close()
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			return
		}
	}
}

func (f *Forwarder) roundTrip(req *http.Request) *http.Response {
	method := req.Method
	req.URL.Scheme, req.URL.Host = f.target.Scheme, f.target.Host
	req.RequestURI = ""
	// req.Host stays as the guest sent it: an S3 signature covers it.
	resp, err := f.transport.RoundTrip(req)
	if err != nil {
		// The request body must be read to its end, or the next request
		// would start in the middle of it.
		if req.Body != nil {
			io.Copy(io.Discard, req.Body)
		}
		msg := fmt.Sprintf("guestfwd: %s %s: %v\n", method, req.URL.Path, err)
		if errors.Is(err, io.EOF) {
			msg = fmt.Sprintf("guestfwd: %s %s: the server closed the connection\n", method, req.URL.Path)
		}
		return &http.Response{StatusCode: http.StatusBadGateway, ProtoMajor: 1, ProtoMinor: 1, Request: req,
			Header:        http.Header{"Content-Type": {"text/plain"}},
			ContentLength: int64(len(msg)), Body: io.NopCloser(strings.NewReader(msg))}
	}
	resp.Request = req
	resp.Close = false
	resp.Header.Del("Connection")
	return resp
}
