package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// powerOutput is go test -json output of the power-cut tests, cut down:
// commit ran to its end, boot-mark-bad failed, install passed.
const powerOutput = `{"Action":"run","Test":"TestPowerCutsInBootState"}
{"Action":"run","Test":"TestPowerCutsInBootState/commit"}
{"Action":"output","Test":"TestPowerCutsInBootState/commit","Output":"    powercut_test.go:210: power: op=commit test=TestPowerCutsInBootState/commit kills=40 ended=20 seed=7 took=29.407s phases=after-write:6,before-write:30,first-lock-set:1,second-lock-set:3\n"}
{"Action":"pass","Test":"TestPowerCutsInBootState/commit"}
{"Action":"run","Test":"TestPowerCutsInBootState/boot-mark-bad"}
{"Action":"output","Test":"TestPowerCutsInBootState/boot-mark-bad","Output":"    powercut_test.go:190: run 3, killed at 20ms: data partition: e2fsck -fn: exit status 4\n"}
{"Action":"fail","Test":"TestPowerCutsInBootState/boot-mark-bad"}
{"Action":"fail","Test":"TestPowerCutsInBootState"}
{"Action":"run","Test":"TestPowerCutsDuringInstall"}
{"Action":"output","Test":"TestPowerCutsDuringInstall","Output":"    powercut_test.go:300: power: op=install test=TestPowerCutsDuringInstall kills=12 ended=3 seed=7 took=9s phases=before-boot-code:10,after-boot-code:2\n"}
{"Action":"pass","Test":"TestPowerCutsDuringInstall"}
`

func TestParsePower(t *testing.T) {
	ops, _ := parsePower([]byte(powerOutput))
	var got []string
	for _, op := range ops {
		r := op.row([]string{"TWINROOT_POWER_KILLS=40"})
		got = append(got, strings.Join(r.Cells, " | ")+" | "+r.Detail)
	}
	want := []string{
		"commit | 40 | 20 | 4 | before-write 30, first-lock-set 1, second-lock-set 3, after-write 6 | 29s | ",
		"install | 12 | 3 |  | before-boot-code 10, after-boot-code 2 | 9s | ",
		"TestPowerCutsInBootState/boot-mark-bad |  |  |  |  |  | powercut_test.go:190: run 3, killed at 20ms: data partition: e2fsck -fn: exit status 4",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	r := ops[0].row([]string{"TWINROOT_POWER_KILLS=40"})
	if want := "TWINROOT_POWER_KILLS=40 go test -count=1 -v -timeout 4h -run '^TestPowerCutsInBootState$/^commit$' ./cmd/updater"; r.Command != want {
		t.Errorf("command %q, want %q", r.Command, want)
	}
}
