package config

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/twinroot/twinroot/internal/partition"
)

// DataMount is where a running system mounts the data partition.
const DataMount = "/data"

// DataPath is where the device config lives on the data partition, relative
// to its root; the installer seeds it there.
const DataPath = "twinroot/device.yaml"

// Defaults of the optional fields.
const (
	DefaultChannel       = "stable"
	DefaultCheckInterval = time.Hour
	MinCheckInterval     = time.Minute
	DefaultTrialBoots    = 1
	MaxTrialBoots        = 3
	DefaultDeadline      = 2 * time.Minute
	DefaultStateDir      = DataMount + "/twinroot/state" // on the data partition: it must outlive a power cut
)

// Config is a checked device config with every default applied.
type Config struct {
	Source          string        `json:"source"`
	Endpoint        string        `json:"endpoint,omitempty"`
	Region          string        `json:"region,omitempty"`
	Credentials     Credentials   `json:"credentials,omitzero"`
	CredentialsFile string        `json:"credentials_file,omitempty"`
	Channel         string        `json:"channel"`
	CheckInterval   time.Duration `json:"check_interval"`
	CheckJitter     time.Duration `json:"check_jitter"`
	Reboot          Reboot        `json:"reboot"`
	TrialBoots      int           `json:"trial_boots"`
	Health          Health        `json:"health"`
	SlotSize        int64         `json:"slot_size"` // bytes
	StateDir        string        `json:"state_dir"`
	Rollout         Rollout       `json:"rollout"`
	Report          Report        `json:"report,omitzero"`
}

// Report is where the device writes its reports (package report), with
// keys that may only put objects; To empty: no reports. Endpoint and
// Region default to the source's.
type Report struct {
	To          string      `json:"to,omitempty"`
	Endpoint    string      `json:"endpoint,omitempty"`
	Region      string      `json:"region,omitempty"`
	Credentials Credentials `json:"credentials,omitzero"`
}

// Rollout places the device in staged rollouts (package rollout): by the
// machine id in MachineIDFile, unless Pin says canary (first) or late
// (last).
type Rollout struct {
	Pin           string `json:"pin,omitempty"`
	MachineIDFile string `json:"machine_id_file"`
}

// Pins of rollout.pin.
const (
	PinCanary = "canary"
	PinLate   = "late"
)

// DefaultMachineIDFile is where the machine id is read by default.
const DefaultMachineIDFile = "/etc/machine-id"

// Credentials are static S3 keys. All empty means the AWS default chain.
type Credentials struct {
	AccessKeyID     Secret `json:"access_key_id,omitzero"`
	SecretAccessKey Secret `json:"secret_access_key,omitzero"`
	SessionToken    Secret `json:"session_token,omitzero"`
}

// IsZero reports whether no credential is set.
func (c Credentials) IsZero() bool { return c == Credentials{} }

// Reboot says when a freshly armed slot is booted.
type Reboot struct {
	Policy Policy `json:"policy"`
	Window Window `json:"window,omitzero"` // only with PolicyWindow
}

// Health is the gate a trial boot must pass, within Deadline, to be committed.
type Health struct {
	Units      []string      `json:"units,omitempty"`      // systemd units that must be active
	Commands   []string      `json:"commands,omitempty"`   // command lines that must exit 0
	Containers []string      `json:"containers,omitempty"` // bundled containers that must be healthy
	Deadline   time.Duration `json:"deadline"`
}

// Default returns a config with every default applied and no source.
func Default() *Config {
	return &Config{
		Channel:       DefaultChannel,
		CheckInterval: DefaultCheckInterval,
		CheckJitter:   DefaultCheckInterval / 10,
		Reboot:        Reboot{Policy: PolicyNow},
		TrialBoots:    DefaultTrialBoots,
		Health:        Health{Deadline: DefaultDeadline},
		SlotSize:      partition.DefaultSlotSize,
		StateDir:      DefaultStateDir,
		Rollout:       Rollout{MachineIDFile: DefaultMachineIDFile},
	}
}

// NextCheck is how long the timer waits before the next check: the interval
// plus a random part of the jitter, so a fleet does not hit the store at once.
func (c Config) NextCheck() time.Duration {
	if c.CheckJitter <= 0 {
		return c.CheckInterval
	}
	return c.CheckInterval + rand.N(c.CheckJitter+1)
}

// Parse checks a device.yaml and returns it with defaults applied. It reads
// no other file: a credentials_file is left for Load to read, and the file
// mode is Load's to check. All errors are returned together (errors.Join of
// *FieldError).
func Parse(data []byte) (*Config, error) {
	c, errs := parse("device.yaml", data)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// Load reads and checks the device config at path. Beyond Parse, it refuses
// a file holding credentials that group or others may read, and reads the
// credentials_file into Credentials (with the same mode rule). Rotated keys
// in a credentials_file take effect at the next Load.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("device config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("device config: %w", err)
	}
	data, err := readAll(f)
	if err != nil {
		return nil, fmt.Errorf("device config %s: %w", path, err)
	}
	c, errs := parse(path, data)
	d := &decoder{file: path}
	if !c.Credentials.IsZero() {
		if err := tooOpen(fi.Mode()); err != nil {
			d.errorf("credentials", 0, "%v", err)
		}
	}
	if c.CredentialsFile != "" && len(errs) == 0 {
		creds, err := readCredentialsFile(c.CredentialsFile)
		if err != nil {
			d.errorf("credentials_file", 0, "%v", err)
		}
		c.Credentials = creds
	}
	if errs = append(errs, d.errs...); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// readAll reads a config file, refusing one too large to be a config (a
// wrong --config pointing at a disk image, say).
func readAll(r io.Reader) ([]byte, error) {
	const limit = 1 << 20
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("too large for a device config (at most %d bytes)", limit)
	}
	return b, nil
}

// tooOpen refuses a secret-bearing file that group or others can read,
// as ssh refuses such a private key.
func tooOpen(mode os.FileMode) error {
	if perm := mode.Perm(); perm&0o077 != 0 {
		return fmt.Errorf("mode %04o is too open for a file with credentials (group or others can read it): chmod 600 it", perm)
	}
	return nil
}

// readCredentialsFile reads the [default] section of an AWS shared
// credentials file.
func readCredentialsFile(path string) (Credentials, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Credentials{}, err
	}
	if err := tooOpen(fi.Mode()); err != nil {
		return Credentials{}, fmt.Errorf("%s: %w", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Credentials{}, err
	}
	var c Credentials
	section := ""
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = strings.TrimSpace(line[1 : len(line)-1])
		case section != "default":
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				// Never echo the line: it may hold a key.
				return Credentials{}, fmt.Errorf("%s:%d: want key = value", path, i+1)
			}
			switch strings.TrimSpace(k) {
			case "aws_access_key_id":
				c.AccessKeyID = Secret(strings.TrimSpace(v))
			case "aws_secret_access_key":
				c.SecretAccessKey = Secret(strings.TrimSpace(v))
			case "aws_session_token":
				c.SessionToken = Secret(strings.TrimSpace(v))
			}
		}
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return Credentials{}, fmt.Errorf("%s: no aws_access_key_id and aws_secret_access_key in its [default] section", path)
	}
	return c, nil
}
