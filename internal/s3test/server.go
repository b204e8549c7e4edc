package s3test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Launch starts a server of kind ("minio" or "versitygw") with its data
// and log under dir and creates the bucket, for programs that are not
// tests (make bench). Start is the same for a test. The caller must call
// stop, which ends the server and waits for it.
func Launch(kind, dir string) (s *Server, stop func(), err error) {
	bin, err := FindBinary(kind)
	if err != nil {
		return nil, nil, err
	}
	s, err = newServer(kind, dir)
	if err != nil {
		return nil, nil, err
	}
	stop, err = s.run(bin)
	if err != nil {
		return nil, nil, fmt.Errorf("start %s: %w\n%s", kind, err, tail(s.LogFile))
	}
	return s, stop, nil
}

// FindBinary finds the server's executable in GOBIN, GOPATH/bin and PATH.
func FindBinary(kind string) (string, error) {
	if kind != "minio" && kind != "versitygw" {
		return "", fmt.Errorf("unknown S3 server kind %q (want minio or versitygw)", kind)
	}
	name := kind // the executables are named after the kinds
	var dirs []string
	if gobin := goEnv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	for _, gp := range filepath.SplitList(goEnv("GOPATH")) {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: %s not installed (looked in %s and PATH): run `make s3-servers`", ErrNotInstalled, name, strings.Join(dirs, ", "))
}

// ErrNotInstalled is returned by FindBinary for a server that is not
// installed.
var ErrNotInstalled = errors.New("S3 server not installed")

func newServer(kind, dir string) (*Server, error) {
	s := &Server{
		Kind:      kind,
		Region:    "us-east-1",
		AccessKey: "twinroot-test",
		SecretKey: "twinroot-test-secret",
		Bucket:    "twinroot-test",
		DataDir:   filepath.Join(dir, "data"),
		LogFile:   filepath.Join(dir, kind+".log"),
	}
	if err := os.MkdirAll(s.DataDir, 0o755); err != nil {
		return nil, err
	}
	return s, nil
}

// run starts the server on a free port of 127.0.0.1. A free port can be
// taken by someone else between probe and bind: it tries a few.
func (s *Server) run(bin string) (stop func(), err error) {
	for range 3 {
		port, perr := freePort()
		if perr != nil {
			return nil, perr
		}
		s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", port)
		if stop, err = s.launch(bin, port); err == nil {
			return stop, nil
		}
	}
	return nil, err
}

// launch starts the server on port and returns once its bucket exists.
func (s *Server) launch(bin string, port int) (stop func(), err error) {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var cmd *exec.Cmd
	switch s.Kind {
	case "minio":
		console, err := freePort()
		if err != nil {
			return nil, err
		}
		cmd = exec.Command(bin, "server", "--quiet", "--address", addr,
			"--console-address", fmt.Sprintf("127.0.0.1:%d", console), s.DataDir)
		cmd.Env = s.minioEnv()
	case "versitygw":
		cmd = exec.Command(bin, "--port", addr, "--access", s.AccessKey, "--secret", s.SecretKey,
			"--region", s.Region, "posix", s.DataDir)
		cmd.Env = os.Environ()
	default:
		return nil, fmt.Errorf("unknown S3 server kind %q (want minio or versitygw)", s.Kind)
	}
	g, err := newGroup(s.LogFile, 1)
	if err != nil {
		return nil, err
	}
	if err := g.start(cmd); err != nil {
		g.stop()
		return nil, fmt.Errorf("start %s: %w", s.Kind, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := s.createBucket(ctx, g.exited); err != nil {
		g.stop()
		return nil, err
	}
	return g.stop, nil
}

// group is the processes of one server, logging to one file, stopped
// together: SIGTERM, and SIGKILL for those still running 10 s later.
type group struct {
	log    *os.File
	cmds   []*exec.Cmd
	wg     sync.WaitGroup
	exited chan error // each process's exit, as it exits
	once   sync.Once
}

// newGroup opens the log of a group of at most n processes.
func newGroup(logFile string, n int) (*group, error) {
	log, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &group{log: log, exited: make(chan error, n)}, nil
}

// start starts cmd in a process group of its own, so that a kill reaches
// nothing but the server.
func (g *group) start(cmd *exec.Cmd) error {
	cmd.Stdout, cmd.Stderr = g.log, g.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	g.cmds = append(g.cmds, cmd)
	g.wg.Add(1)
	go func() { defer g.wg.Done(); g.exited <- cmd.Wait() }()
	return nil
}

// stop ends every process of the group and waits for them.
func (g *group) stop() {
	g.once.Do(func() {
		for _, c := range g.cmds {
			c.Process.Signal(syscall.SIGTERM)
		}
		done := make(chan struct{})
		go func() { g.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			for _, c := range g.cmds {
				c.Process.Kill()
			}
			<-done
		}
		g.log.Close()
	})
}

// minioEnv is the environment of a MinIO process of s.
func (s *Server) minioEnv() []string {
	return append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CALLHOME_ENABLE=off",
	)
}
