package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
)

// DNS is a DNS server on 127.0.0.1 that answers every query "no such
// domain" (NXDOMAIN). A client whose dialer uses its Resolver sees a host
// name that does not resolve exactly as on a real network (a *net.DNSError
// with IsNotFound), through Go's own resolver, without a packet leaving
// the machine: tests send traffic to 127.0.0.1 only.
type DNS struct {
	conn net.PacketConn
	wg   sync.WaitGroup

	mu      sync.Mutex
	queries int
}

// StartDNS starts the server on a free UDP port of 127.0.0.1.
func StartDNS() (*DNS, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: dns: %w", err)
	}
	d := &DNS{conn: c}
	d.wg.Add(1)
	go d.serve()
	return d, nil
}

// Resolver returns a resolver that asks this server, whatever the system's
// resolv.conf names.
func (d *DNS) Resolver() *net.Resolver {
	addr := d.conn.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp", addr)
	}}
}

// Queries returns the number of queries answered.
func (d *DNS) Queries() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries
}

// Close stops the server.
func (d *DNS) Close() error {
	err := d.conn.Close()
	d.wg.Wait()
	return err
}

func (d *DNS) serve() {
	defer d.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		resp, err := nxdomain(buf[:n])
		if err != nil {
			continue
		}
		d.mu.Lock()
		d.queries++
		d.mu.Unlock()
		d.conn.WriteTo(resp, from)
	}
}

// nxdomain makes the answer to query q: its header and question, marked a
// response with recursion available and RCODE 3 (NXDOMAIN), and no
// records (the query's EDNS record is left out).
func nxdomain(q []byte) ([]byte, error) {
	const header = 12
	if len(q) < header || q[2]&0x80 != 0 || q[4] != 0 || q[5] != 1 {
		return nil, errors.New("not a query with one question")
	}
	i := header
	for i < len(q) && q[i] != 0 {
		if q[i]&0xc0 != 0 {
			return nil, errors.New("compressed name in a query")
		}
		i += 1 + int(q[i])
	}
	end := i + 1 + 4 // the root label, QTYPE and QCLASS
	if end > len(q) {
		return nil, errors.New("short question")
	}
	r := append([]byte(nil), q[:end]...)
	r[2] = 0x80 | q[2]&0x79 // QR, the query's opcode and RD
	r[3] = 0x80 | 3         // RA, NXDOMAIN
	for k := 6; k < header; k++ {
		r[k] = 0 // no answer, authority or additional records
	}
	return r, nil
}
