package s3test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// MinIOOptions are the options of LaunchMinIO.
type MinIOOptions struct {
	// Nodes is the number of MinIO processes of one distributed MinIO on
	// 127.0.0.1, each with a drive of its own (erasure coded over them);
	// 0 or 1 is one process with one drive.
	Nodes int
	// Env is more environment of every process (MINIO_AUDIT_WEBHOOK_…).
	Env []string
}

// LaunchMinIO starts MinIO as o says, with its data and log under dir, and
// creates the bucket, for programs that are not tests (make bench). Every
// node serves the whole bucket: endpoints lists them, the first is
// s.Endpoint. The caller must call stop, which ends every process and
// waits for them.
func LaunchMinIO(dir string, o MinIOOptions) (s *Server, endpoints []string, stop func(), err error) {
	bin, err := FindBinary("minio")
	if err != nil {
		return nil, nil, nil, err
	}
	if s, err = newServer("minio", dir); err != nil {
		return nil, nil, nil, err
	}
	nodes := max(o.Nodes, 1)
	var ports, consoles []int
	for range nodes {
		p, err := freePort()
		if err != nil {
			return nil, nil, nil, err
		}
		c, err := freePort()
		if err != nil {
			return nil, nil, nil, err
		}
		ports, consoles = append(ports, p), append(consoles, c)
	}
	drives := []string{s.DataDir}
	if nodes > 1 {
		drives = nil
		for i, p := range ports {
			d := filepath.Join(s.DataDir, fmt.Sprintf("node%d", i+1))
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, nil, nil, err
			}
			drives = append(drives, fmt.Sprintf("http://127.0.0.1:%d%s", p, d))
		}
	}
	g, err := newGroup(s.LogFile, nodes)
	if err != nil {
		return nil, nil, nil, err
	}
	for i := range nodes {
		args := append([]string{"server", "--quiet", "--address", fmt.Sprintf("127.0.0.1:%d", ports[i]),
			"--console-address", fmt.Sprintf("127.0.0.1:%d", consoles[i])}, drives...)
		cmd := exec.Command(bin, args...)
		// MINIO_CI_CD lets the drives of a distributed MinIO share the
		// root disk, as they do on one test host. In a container MinIO
		// takes no endpoint on 127.0.0.1 for its own unless told which.
		cmd.Env = append(append(s.minioEnv(), "MINIO_CI_CD=1", fmt.Sprintf("_MINIO_SERVER_LOCAL=127.0.0.1:%d", ports[i])), o.Env...)
		if err := g.start(cmd); err != nil {
			g.stop()
			return nil, nil, nil, fmt.Errorf("start minio node %d: %w", i+1, err)
		}
		endpoints = append(endpoints, fmt.Sprintf("http://127.0.0.1:%d", ports[i]))
	}
	s.Endpoint = endpoints[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*startTimeout)
	defer cancel()
	if err := s.createBucket(ctx, g.exited); err != nil {
		g.stop()
		return nil, nil, nil, errors.Join(err, errors.New(tail(s.LogFile)))
	}
	return s, endpoints, g.stop, nil
}
