package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testdata/store.json is the go test -json output of a round of five cases
// on each store, edited so that minio's chunks.idx/403 failed.
func TestParseStore(t *testing.T) {
	out, err := os.ReadFile("testdata/store.json")
	if err != nil {
		t.Fatal(err)
	}
	r := parseStore(out)
	if got, want := r.Policy, "3-try policy waiting 50ms..200ms, stall time-out 1s, drip a byte every 100ms."; got != want {
		t.Errorf("policy %q, want %q", got, want)
	}
	var got []string
	for _, c := range r.Cases {
		got = append(got, strings.Join([]string{c.Store, c.Object, c.Fault, c.Outcome, c.Exit}, " "))
	}
	want := []string{
		"versitygw - clean armed 0",
		"versitygw latest.json reset once armed 0",
		"versitygw latest.json 403 failed 1",
		"versitygw chunks.idx reset once armed 0",
		"versitygw chunks.idx 403 failed 1",
		"versitygw (host) dns failed 1",
		"minio - clean armed 0",
		"minio latest.json reset once armed 0",
		"minio latest.json 403 failed 1",
		"minio chunks.idx reset once armed 0",
		"minio (host) dns failed 1",
		"minio chunks.idx 403  ", // failed: not in the table
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("cases (-want +got):\n%s", diff)
	}
	for i, c := range r.Cases {
		if c.Failed != (i == len(r.Cases)-1) {
			t.Errorf("%s %s %s: failed %v", c.Store, c.Object, c.Fault, c.Failed)
		}
	}
	reset, failed := r.Cases[9], r.Cases[11]
	if diff := cmp.Diff([]int{1, 2, 1}, reset.Requests); diff != "" || reset.Retries != 1 || reset.Took != 280*time.Millisecond ||
		reset.Test != "TestStoreFaults/minio/chunks.idx/reset_once" {
		t.Errorf("minio chunks.idx reset once: %+v", reset)
	}
	if !strings.HasPrefix(failed.Detail, `store_faults_test.go:471: round = `) || failed.Test != "TestStoreFaults/minio/chunks.idx/403" {
		t.Errorf("the failed case: %+v", failed)
	}
}

func TestStoreRows(t *testing.T) {
	clean := storeCase{Store: "minio", Object: "-", Fault: "clean", Test: "TestStoreFaults/minio", Outcome: "armed", Exit: "0",
		Requests: []int{1, 1, 1}, Took: 100 * time.Millisecond}
	stall := storeCase{Store: "minio", Object: "latest.json", Fault: "stall once", Test: "TestStoreFaults/minio/latest.json/stall_once",
		Outcome: "armed", Exit: "0", Requests: []int{2, 1, 1}, Retries: 1, Took: time.Second}
	gw := clean
	gw.Store, gw.Test = "versitygw", "TestStoreFaults/versitygw"
	slower := stall
	slower.Requests, slower.Retries, slower.Took = []int{3, 1, 1}, 2, 2*time.Second
	failed := storeCase{Store: "minio", Object: "latest.json", Fault: "stall once", Test: stall.Test, Failed: true, Detail: "took too long"}
	rows := storeRows([][]storeCase{{gw, clean, stall}, {clean, gw, slower}, {gw, clean, failed}})
	var got []string
	for _, r := range rows {
		got = append(got, strings.Join(r.Cells, " | "))
	}
	want := []string{
		"minio | - | clean | 3/3 | armed | 0 | [1 1 1] | 0 | 100ms | 100ms",
		"minio | latest.json | stall once | 2/3 | armed | 0 | [2 1 1], [3 1 1] | 1–2 | 2s | 2s",
		"versitygw | - | clean | 3/3 | armed | 0 | [1 1 1] | 0 | 100ms | 100ms",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if r := rows[1]; !r.Failed || r.Detail != "failed in 1 of 3 rounds: took too long" ||
		r.Command != `CI=1 go test -count=3 -v -run '^TestStoreFaults$/^minio$/^latest\.json$/^stall_once$' ./internal/agent` {
		t.Errorf("stall row: %+v", r)
	}
	if got, want := rows[0].Command, `CI=1 go test -count=3 -v -run '^TestStoreFaults$/^minio$/^$' ./internal/agent`; got != want {
		t.Errorf("clean row's command %s, want %s", got, want)
	}
}

func TestParseStoreBuildFailure(t *testing.T) {
	out := `{"ImportPath":"github.com/twinroot/twinroot/internal/agent [github.com/twinroot/twinroot/internal/agent.test]","Action":"build-output","Output":"# github.com/twinroot/twinroot/internal/agent\n"}
{"ImportPath":"github.com/twinroot/twinroot/internal/agent [github.com/twinroot/twinroot/internal/agent.test]","Action":"build-output","Output":"internal/agent/boot.go:12:2: undefined: x\n"}
{"Action":"start","Package":"github.com/twinroot/twinroot/internal/agent"}
{"Action":"fail","Package":"github.com/twinroot/twinroot/internal/agent","Elapsed":0,"FailedBuild":"github.com/twinroot/twinroot/internal/agent [github.com/twinroot/twinroot/internal/agent.test]"}
`
	r := parseStore([]byte(out))
	if len(r.Cases) != 0 || !strings.Contains(r.Tail, "undefined: x") {
		t.Errorf("parseStore of a build failure: %d cases, tail %q", len(r.Cases), r.Tail)
	}
}
