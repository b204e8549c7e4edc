package main

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// countingProxy forwards TCP connections from 127.0.0.1 to a server and
// counts the bytes each way: what a device would pay on its link.
type countingProxy struct {
	ln       net.Listener
	target   string
	up, down atomic.Int64 // client to server, server to client
	conns    atomic.Int64
	open     atomic.Int64 // connections not yet counted
	wg       sync.WaitGroup
}

func startProxy(target string) (*countingProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("counting proxy: %w", err)
	}
	p := &countingProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is host:port of the proxy.
func (p *countingProxy) Addr() string { return p.ln.Addr().String() }

// Reset waits (a few seconds at most) until every connection has closed
// and been counted, zeroes the counters and returns what they held.
func (p *countingProxy) Reset() (up, down, conns int64) {
	for i := 0; i < 500 && p.open.Load() > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	return p.up.Swap(0), p.down.Swap(0), p.conns.Swap(0)
}

func (p *countingProxy) Close() {
	p.ln.Close()
	p.wg.Wait()
}

func (p *countingProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.conns.Add(1)
		p.open.Add(1)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.open.Add(-1)
			p.forward(c)
		}()
	}
}

func (p *countingProxy) forward(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	done := make(chan struct{})
	go func() {
		n, _ := io.Copy(s, c)
		p.up.Add(n)
		s.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	n, _ := io.Copy(c, s)
	p.down.Add(n)
	c.(*net.TCPConn).CloseWrite()
	<-done
}
