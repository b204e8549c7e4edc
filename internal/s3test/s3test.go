package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// Kinds lists the servers Start knows, for table tests over all of them.
var Kinds = []string{"minio", "versitygw"}

// Server is a running S3 server.
type Server struct {
	Kind      string // "minio" or "versitygw"
	Endpoint  string // http://127.0.0.1:PORT
	Region    string
	AccessKey string
	SecretKey string
	Bucket    string
	DataDir   string // the server's storage, under t.TempDir()
	LogFile   string // the server's stdout and stderr
}

// URL returns s3://BUCKET/prefix.
func (s *Server) URL(prefix string) string {
	return "s3://" + s.Bucket + "/" + strings.TrimPrefix(prefix, "/")
}

// Env returns the environment variables that point an AWS client (the aws
// CLI, the SDK's default chain) at the server.
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + s.Region,
		"AWS_DEFAULT_REGION=" + s.Region,
		"AWS_ENDPOINT_URL=" + s.Endpoint,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_PAGER=",
	}
}

// startTimeout bounds how long a server may take to answer; MinIO needs a
// few seconds on a loaded 2-core machine.
const startTimeout = 60 * time.Second

// Start starts a server of kind ("minio" or "versitygw") and creates a
// bucket on it. It skips the test when the binary is missing, or fails it
// when the CI environment variable is set.
func Start(t testing.TB, kind string) *Server {
	t.Helper()
	bin := findBinary(t, kind)
	s, err := newServer(kind, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stop, err := s.run(bin)
	if err != nil {
		t.Fatalf("start %s: %v\n%s", kind, err, tail(s.LogFile))
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", s.Kind, tail(s.LogFile))
		}
	})
	return s
}

// createBucket creates the bucket, retrying until the server answers; the
// first success is the readiness signal for both kinds.
func (s *Server) createBucket(ctx context.Context, exited <-chan error) error {
	client := s.client()
	for {
		_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)})
		var apiErr smithy.APIError
		if err == nil || (errors.As(err, &apiErr) && apiErr.ErrorCode() == "BucketAlreadyOwnedByYou") {
			return nil
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("%s exited before it was ready: %v", s.Kind, werr)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %v", s.Kind, startTimeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// client returns a plain SDK client for the server, with no retries so the
// readiness loop polls at its own pace.
func (s *Server) client() *s3.Client {
	return s3.New(s3.Options{
		Region:                     s.Region,
		BaseEndpoint:               aws.String(s.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		RetryMaxAttempts:           1,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// AWS runs the aws CLI with args against the server (--endpoint-url and
// credentials set) and returns its standard output; a failure fails t.
func (s *Server) AWS(t testing.TB, args ...string) []byte {
	t.Helper()
	out, err := s.TryAWS(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TryAWS is AWS returning the error instead of failing the test.
func (s *Server) TryAWS(args ...string) ([]byte, error) {
	bin, err := AWSBinary()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"--endpoint-url", s.Endpoint}, args...)...)
	cmd.Env = append(os.Environ(), s.Env()...)
	cmd.Env = append(cmd.Env, "HOME="+filepath.Dir(s.DataDir)) // no ~/.aws of the user
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("aws %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// AWSBinary finds the aws CLI: Debian's awscli package first, then PATH.
func AWSBinary() (string, error) {
	if fi, err := os.Stat("/usr/bin/aws"); err == nil && !fi.IsDir() {
		return "/usr/bin/aws", nil
	}
	p, err := exec.LookPath("aws")
	if err != nil {
		return "", fmt.Errorf("aws CLI not found: install Debian's awscli (make deps)")
	}
	return p, nil
}

// findBinary is FindBinary for a test: a missing server skips it, or
// fails it under CI.
func findBinary(t testing.TB, kind string) string {
	t.Helper()
	p, err := FindBinary(kind)
	if errors.Is(err, ErrNotInstalled) && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// goEnv asks the go command, which knows the defaults (GOPATH is ~/go when
// unset); the environment is the fallback when go is not in PATH.
func goEnv(name string) string {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		if name == "GOPATH" && os.Getenv(name) == "" {
			if home, err := os.UserHomeDir(); err == nil {
				return filepath.Join(home, "go")
			}
		}
		return os.Getenv(name)
	}
	return strings.TrimSpace(string(out))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last lines of a log file.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}
