package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/s3test"
)

// audit counts the requests the store answered, from MinIO's audit log
// (one JSON entry per request, posted in batches).
type audit struct {
	srv *http.Server
	url string

	mu     sync.Mutex
	counts map[requestKind]int64
	bytes  int64 // bytes of the bodies the store sent
	total  int64
}

// requestKind is a kind of request: its API, what it was about, and the
// store's answer.
type requestKind struct {
	Device bool   `json:"device"` // a device's request, else the operator's
	API    string `json:"api"`
	Object string `json:"object"` // latest.json, manifest, index, image, report, other
	Status int    `json:"status"`
}

func startAudit() (*audit, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &audit{counts: map[requestKind]int64{}, url: "http://" + l.Addr().String() + "/audit"}
	a.srv = &http.Server{Handler: http.HandlerFunc(a.serve)}
	go a.srv.Serve(l)
	return a, nil
}

func (a *audit) close() { a.srv.Close() }

func (a *audit) serve(w http.ResponseWriter, r *http.Request) {
	type entry struct {
		UserAgent string `json:"userAgent"`
		API       struct {
			Name       string `json:"name"`
			Object     string `json:"object"`
			StatusCode int    `json:"statusCode"`
			TX         int64  `json:"tx"`
		} `json:"api"`
	}
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var batch []entry
	for sc.Scan() {
		var e entry
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.API.Name != "" {
			batch = append(batch, e)
		}
	}
	a.mu.Lock()
	for _, e := range batch {
		a.counts[requestKind{Device: strings.Contains(e.UserAgent, deviceMark), API: e.API.Name, Object: objectKind(e.API.Object), Status: e.API.StatusCode}]++
		a.bytes += e.API.TX
		a.total++
	}
	a.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// objectKind names what an object key is, in the release layout.
func objectKind(key string) string {
	switch base := path.Base(key); {
	case key == "":
		return ""
	case strings.Contains(key, "/reports/"):
		return "report"
	case base == manifest.Latest:
		return "latest.json"
	case base == manifest.File:
		return "manifest"
	case base == manifest.IndexObject:
		return "index"
	case base == manifest.ImageObject:
		return "image"
	}
	return "other"
}

// snapshot is the audit's counts at one time.
type snapshot struct {
	counts map[requestKind]int64
	bytes  int64
	total  int64
}

func (a *audit) snapshot() snapshot {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := snapshot{counts: make(map[requestKind]int64, len(a.counts)), bytes: a.bytes, total: a.total}
	for k, n := range a.counts {
		s.counts[k] = n
	}
	return s
}

// settle waits until the store has posted every request it answered:
// until done says the counts hold what the devices know they asked, and
// then hold still for two seconds (MinIO posts a batch at least every
// second, later when its queue is long). A store that lost entries is
// seen when the minute passes and done is still false.
func (a *audit) settle(ctx context.Context, done func(snapshot) bool) snapshot {
	deadline := time.Now().Add(time.Minute)
	last, still := int64(-1), 0
	for time.Now().Before(deadline) && ctx.Err() == nil {
		s := a.snapshot()
		if s.total == last && done(s) {
			if still++; still >= 8 {
				return s
			}
		} else {
			still = 0
		}
		last = s.total
		time.Sleep(250 * time.Millisecond)
	}
	return a.snapshot()
}

// sub is what s counted since before.
func (s snapshot) sub(before snapshot) snapshot {
	d := snapshot{counts: map[requestKind]int64{}, bytes: s.bytes - before.bytes, total: s.total - before.total}
	for k, n := range s.counts {
		if n -= before.counts[k]; n != 0 {
			d.counts[k] = n
		}
	}
	return d
}

// where sums the counts that match.
func (s snapshot) where(match func(requestKind) bool) int64 {
	var n int64
	for k, c := range s.counts {
		if match(k) {
			n += c
		}
	}
	return n
}

// storeSetup is a store the fleet runs against.
type storeSetup struct {
	Name  string `json:"name"`
	Nodes int    `json:"nodes"`
}

// launch starts MinIO as setup says, its audit log posted to a.
func launch(dir string, setup storeSetup, a *audit) (*s3test.Server, []string, func(), error) {
	srv, endpoints, stop, err := s3test.LaunchMinIO(dir, s3test.MinIOOptions{Nodes: setup.Nodes, Env: []string{
		"MINIO_AUDIT_WEBHOOK_ENABLE_bench=on",
		"MINIO_AUDIT_WEBHOOK_ENDPOINT_bench=" + a.url,
		"MINIO_AUDIT_WEBHOOK_BATCH_SIZE_bench=500",
		"MINIO_AUDIT_WEBHOOK_QUEUE_SIZE_bench=1000000",
	}})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("start %s: %w", setup.Name, err)
	}
	return srv, endpoints, stop, nil
}

// sortKinds orders kinds by count, most first.
func sortKinds(ks []Kind) {
	slices.SortFunc(ks, func(a, b Kind) int {
		if a.Count != b.Count {
			return int(b.Count - a.Count)
		}
		return strings.Compare(fmt.Sprint(a.requestKind), fmt.Sprint(b.requestKind))
	})
}
