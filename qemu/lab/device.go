package lab

import (
	"fmt"

	"github.com/twinroot/twinroot/internal/s3test"
)

// GuestStore is where a guest finds the host's S3 server: QEMU's guestfwd
// (see Forwarder.GuestFwd) turns a connection to this address into one to
// the server on 127.0.0.1.
const GuestStore = "10.0.2.100:9000"

// DeviceYAML is the device.yaml of a guest that updates from s's channel
// under prefix, reached at GuestStore: reboot at once, one trial boot, the
// updater's state on the data partition. extra is appended as it is (more
// fields, one per line).
func DeviceYAML(s *s3test.Server, prefix, extra string) string {
	return fmt.Sprintf(`source: %s
endpoint: http://%s
region: %s
credentials:
  access_key_id: %s
  secret_access_key: %s
channel: %s
reboot:
  policy: now
trial_boots: 1
state_dir: /data/twinroot/state
`, s.URL(prefix), GuestStore, s.Region, s.AccessKey, s.SecretKey, Channel) + extra
}
