// Package config loads and checks device.yaml, the device config: where the
// updater finds releases, how often it looks, when it may reboot and what a
// trial boot must prove before it is committed.
//
// The installer seeds it on the data partition at DataPath; `--config FILE`
// names another one. Trusted release keys are not part of it: they come from
// the running slot's image, so a config can never widen what a device trusts.
//
// # device.yaml
//
//	source: s3://releases/fleet      # required: s3://bucket/prefix, https://host/prefix
//	                                 #   (http:// too) or file:///path (USB, air-gapped)
//	endpoint: http://10.0.2.100:9000 # S3 endpoint URL (MinIO, Ceph, ...); default AWS
//	region: eu-central-1             # S3 region; default from the AWS chain, then us-east-1
//	credentials:                     # S3 keys; read-only ones; default the AWS chain
//	  access_key_id: AKIA...         #   (environment, shared files)
//	  secret_access_key: ...
//	  session_token: ...             #   optional
//	credentials_file: /path          # or: an AWS credentials file ([default] section
//	                                 #   with aws_access_key_id, aws_secret_access_key,
//	                                 #   aws_session_token), read by Load; absolute path
//	channel: stable                  # release channel; default stable
//	check_interval: 1h               # how often the timer checks; default 1h, at least 1m
//	check_jitter: 6m                 # random delay added to each wait, 0 to
//	                                 #   check_interval; default 10% of check_interval
//	reboot:
//	  policy: now                    # now (default), window or next-boot
//	  window: "02:00-04:00"          # local time; required with policy window,
//	                                 #   may cross midnight ("22:00-02:00")
//	trial_boots: 1                   # boots a new slot gets before GRUB falls back; 1..3, default 1
//	health:                          # the gate a trial boot must pass to be committed
//	  units: [sshd.service]          # systemd units that must be active
//	  commands: ["curl -fsS http://127.0.0.1/health"] # must exit 0
//	  containers: [web]              # bundled containers that must be healthy
//	  deadline: 2m                   # all of it within; default 2m
//	slot_size: 2G                    # slot partition size for the installer; bytes or
//	                                 #   K, M, G, T (binary: 2G = 2 GiB); default 2G, at least 16M
//	state_dir: /data/twinroot/state  # updater state (journal, last check) on the data
//	                                 #   partition; absolute; default /data/twinroot/state
//	rollout:                         # the device's place in staged rollouts (package rollout)
//	  pin: canary                    # canary (first) or late (last); default: by machine id
//	  machine_id_file: /etc/machine-id # absolute; default /etc/machine-id
//	report:                          # device reports (package report); default: none
//	  to: s3://fleet/reports         # s3://bucket/prefix or file:///path
//	  endpoint: http://10.0.2.100:9000 # S3 only; default: endpoint above
//	  region: eu-central-1           # S3 only; default: region above
//	  credentials:                   # S3 only: keys that may only put objects
//	    access_key_id: AKIA...
//	    secret_access_key: ...
//
// Durations are Go durations (90s, 30m, 1h30m). endpoint, region and the
// credentials only mean something for an s3:// source and are refused with
// any other. A field left empty (`region:`) counts as not given.
//
// # Checking
//
// Parsing is strict: an unknown field, a field given twice, a value of the
// wrong shape or out of range is an error that names the field, and every
// error of a file is reported together, one line each:
//
//	device.yaml: check_interval: "5x" is not a duration, like 90s, 30m or 1h (line 4)
//
// The fields are decoded from yaml.v3's node tree rather than with
// Decoder.KnownFields, whose messages name Go types and lines but not fields.
//
// # Secrets
//
// Credentials are read-only keys, but still secrets: a device.yaml that holds
// them, and a credentials_file, must not be readable by group or others (as
// ssh demands of a private key); Load refuses them otherwise. Secrets are of
// type Secret, which prints, logs and marshals (fmt, log/slog, JSON, YAML,
// text) as "<redacted>"; Reveal gives the value to the one caller that needs
// it, the store client.
package config
