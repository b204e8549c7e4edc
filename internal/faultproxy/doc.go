// Package faultproxy is a TCP proxy for tests that breaks HTTP traffic the
// way networks and overloaded stores do, so a client's retries and checks
// can be proven against a real server (MinIO on 127.0.0.1) instead of a
// mock.
//
// The proxy listens on 127.0.0.1 only and forwards to one upstream address.
// It reads each HTTP/1.1 request the client sends, and a Policy picks a
// Fault for it:
//
//   - Pass: forwarded untouched.
//   - Reset: forwarded; after Fault.After bytes of the response body the
//     client connection is reset (TCP RST, SO_LINGER 0).
//   - Stall: forwarded; after Fault.After body bytes nothing more is sent
//     for Fault.For, then the rest follows.
//   - Truncate: the headers (with the full Content-Length) and Fault.After
//     body bytes are sent, then the connection is closed (FIN).
//   - Flip: forwarded with the body byte at Fault.After inverted.
//   - Drip: forwarded; from Fault.After on, Fault.N body bytes (the whole
//     rest when N is 0) are sent one at a time, Fault.For apart: a
//     connection that never goes quiet long enough for a time-out on each
//     read, yet would take hours to deliver the body.
//   - Length: forwarded whole under a Content-Length that is Fault.N off.
//     One that says more leaves the client waiting for bytes that never
//     come (the connection stays open and silent until the client gives
//     up); one that says less leaves the rest of the body on the
//     connection, which is closed after it.
//   - Status500, Status503, Status403, Status404: answered by the proxy
//     itself with an S3-style XML error (InternalError, SlowDown,
//     AccessDenied, NoSuchKey); the upstream never sees the request and
//     the connection stays open.
//   - Substitute: forwarded, but answered with Fault.Body (another
//     object's bytes) in place of the object's, cut to the request's range
//     as a server cuts an object (clipped at its end, 416 past it), under
//     the upstream's status and headers (its ETag included). S3 requests
//     are signed over their path, so the proxy cannot ask the upstream for
//     the other object itself: the test reads it from the store first.
//
// Fault.After below zero picks the offset at random within the body, once
// its length is known. A fault that needs a body byte (Reset, Truncate,
// Flip, Drip) is clamped to the body, so a truncated body always misses at
// least its last byte; on an empty body it counts as a pass, and so do a
// Length or a Substitute on an answer that is not a success with a body
// of known length.
//
// A ConnPolicy picks a Fault per connection instead, counted on every byte
// the proxy sends back on it (status lines and headers included): the
// connection is reset, stalled, dripped, closed or has one byte flipped at
// that offset, or has every request answered with a 500, 503, 403 or 404.
// Length and Substitute act on requests only.
//
// Faults are deterministic for a given seed and sequence of requests: the
// policies draw from one random source, seeded by Options.Seed, one request
// at a time. Counts reports what was done, and Events lists every fault
// with the request it hit.
package faultproxy
