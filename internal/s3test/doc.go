// Package s3test starts a real S3 server for tests: MinIO or versitygw (its
// posix backend), on 127.0.0.1 at a free port, with its data under the
// test's temporary directory and one bucket created. The server is killed
// and waited for when the test ends. Launch does the same for a program
// that is not a test (make bench), which stops the server itself.
//
// The binaries come from `make s3-servers` (go install into GOBIN or
// GOPATH/bin) or PATH. When one is missing a test is skipped, or failed
// when the CI environment variable is set, so CI never passes by skipping.
//
// Server.AWS runs the aws CLI against the server as an outside client,
// preferring Debian's /usr/bin/aws over one earlier in PATH.
package s3test
