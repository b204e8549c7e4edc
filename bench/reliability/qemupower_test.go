package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseQEMUPower(t *testing.T) {
	var b strings.Builder
	event := func(action, test, output string) {
		line, _ := json.Marshal(testEvent{Action: action, Test: test, Output: output})
		b.Write(append(line, '\n'))
	}
	const top = "TestScenarioPowerCutDuringUpdate"
	event("run", top, "")
	event("run", top+"/bios", "")
	event("run", top+"/uefi", "")
	event("output", top+"/bios", `    powercut_update_test.go:125:   30.7s  cut 1: power off 2.45s after "applying" (planned 2.44s, drawn from 2.0-4.3s); GRUB boots a, b writing; journal 12819868 of 48771072 bytes (26%), 27841702 new bytes left`+"\n")
	event("output", top+"/uefi", `    powercut_update_test.go:125:   31.0s  cut 1: power off 3.10s after "applying" (planned 3.00s, drawn from 2.0-4.3s); GRUB boots a, b writing; journal 4000 of 8000 bytes (50%), 1 new bytes left`+"\n")
	event("output", top+"/bios", `    powercut_update_test.go:140:   57.9s  cut 2: power off 9.84s after "applying" (planned 9.80s): b was already verified and armed`+"\n")
	event("output", top+"/bios", "    powercut_update_test.go:200:  99.0s  v2 committed after 2 power cuts in its apply and 4 boots\n")
	event("output", top+"/bios", "    scenarios_test.go:103: scenario TestScenarioPowerCutDuringUpdate/bios took 4m41.9s\n")
	event("output", top+"/uefi", "    powercut_update_test.go:99: guest reboot: timed out\n")
	event("pass", top+"/bios", "")
	event("fail", top+"/uefi", "")
	event("fail", top, "")
	// The Debian scenario fails before its firmwares start.
	const debian = "TestScenarioDebianPowerCut"
	event("run", debian, "")
	event("output", debian, "    powercut_update_test.go:140: debootstrap: exit status 1\n")
	event("fail", debian, "")

	runs, _ := parseQEMUPower([]byte(b.String()))
	if len(runs) != 3 {
		t.Fatalf("%d runs, want 3: %+v", len(runs), runs)
	}
	bios, uefi, deb := runs[0], runs[1], runs[2]
	if bios.System != "minimal" || bios.Failed || bios.Cuts != 2 || bios.Boots != 4 || bios.Armed != 1 || bios.MinAt != 2.45 || bios.MaxAt != 9.84 || bios.MaxJournal != 26 || bios.Took != "4m41.9s" {
		t.Errorf("bios: %+v", bios)
	}
	if !uefi.Failed || uefi.Cuts != 1 || !strings.Contains(uefi.Detail, "guest reboot: timed out") {
		t.Errorf("uefi: %+v, want failed after 1 cut with the reason", uefi)
	}
	if deb.System != "debian" || !deb.Failed || !strings.Contains(deb.Detail, "debootstrap: exit status 1") {
		t.Errorf("debian: %+v, want a failed run with the reason", deb)
	}
}
