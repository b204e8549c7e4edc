// Package services writes the bundle of the Debian reference system: the
// compose file, env template and build contexts of two services whose
// images hold nothing but a static busybox, built with no registry.
//
//   - backend serves /health on 8081 and counts its starts in its named
//     volume backend-data (/data/starts), so a test can tell that the
//     volume outlived an update and a fallback;
//   - web depends on backend being healthy, reads its port and a secret
//     from its env file, publishes 8080 and serves /health and /version.
//
// Each runs httpd under a shell that exits on SIGTERM: as a container's
// PID 1, a process without a handler ignores it, and every stop would
// wait for podman's 10 s kill.
//
// Both images share their first layer (busybox); web's second layer holds
// its pages, so a release that changes web's pages changes one small
// layer. Broken leaves /health out of web's pages: its health check never
// passes, which the health gate must catch.
package services

import (
	"fmt"
	"os"
	"path/filepath"
)

// Busybox is the static busybox of Debian's busybox-static package.
const Busybox = "/bin/busybox"

// Options of a bundle.
type Options struct {
	Version string // web serves it at /version
	Broken  bool   // web never becomes healthy
	Busybox string // default Busybox
}

// Compose is the bundle's compose file.
const Compose = `# The services of the Debian reference system (twinroot's compose subset).
services:
  backend:
    build: ./backend
    image: localhost/backend:latest
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; date >> /data/starts; httpd -f -p 8081 -h /www & wait"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8081/health"]
      interval: 5s
      timeout: 5s
      retries: 3
      start_period: 5s
    volumes:
      - backend-data:/data
  web:
    build: ./web
    image: localhost/web:latest
    depends_on:
      backend:
        condition: service_healthy
    env_file: web.env
    ports:
      - "8080:8080"
    read_only: true
    cap_drop: [NET_RAW]
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; cp -r /www /tmp/ && echo \"token $${#TOKEN} characters\" > /tmp/www/token && httpd -f -p $$PORT -h /tmp/www & wait"]
    healthcheck:
      test: ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:$$PORT/health"]
      interval: 5s
      timeout: 5s
      retries: 3
      start_period: 5s
volumes:
  backend-data: {}
`

// WebEnv is web's env template: the port has a default a device may
// override in its values.env, the token is made once per device.
const WebEnv = `# web's environment, rendered on the device before every start.
PORT=${PORT:-8080}
TOKEN=${secret:web_token}
`

// Write makes the bundle directory dir.
func Write(dir string, o Options) error {
	if o.Busybox == "" {
		o.Busybox = Busybox
	}
	bb, err := os.ReadFile(o.Busybox)
	if err != nil {
		return fmt.Errorf("static busybox (Debian's busybox-static): %w", err)
	}
	pages := map[string]string{"index.html": "twinroot reference web service\n", "version": o.Version + "\n"}
	if !o.Broken {
		pages["health"] = "ok\n"
	}
	files := map[string]string{
		"compose.yaml":       Compose,
		"web.env":            WebEnv,
		"backend/Dockerfile": "FROM scratch\nCOPY rootfs/ /\nCOPY www/ /www/\n",
		"backend/www/health": "ok\n",
		"web/Dockerfile":     "FROM scratch\nCOPY rootfs/ /\nCOPY www/ /www/\n",
	}
	for n, c := range pages {
		files["web/www/"+n] = c
	}
	for n, c := range files {
		if err := write(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			return err
		}
	}
	for _, svc := range []string{"backend", "web"} {
		root := filepath.Join(dir, svc, "rootfs")
		if err := write(filepath.Join(root, "bin", "busybox"), bb, 0o755); err != nil {
			return err
		}
		for _, a := range []string{"sh", "httpd", "wget", "date", "cp", "echo", "cat"} {
			if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o1777); err != nil {
			return err
		}
	}
	return nil
}

func write(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, mode)
}
