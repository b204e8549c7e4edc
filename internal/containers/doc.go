// Package containers owns the services a slot image carries: it reads a
// compose file at build time, bakes the images and Podman Quadlet units
// into the slot, renders each service's env file before every start on the
// device, and reports the services' state.
//
// # The bundle directory (updater build --containers DIR)
//
//	DIR/compose.yaml     the services, in the compose subset of Load
//	DIR/*.tar            image archives (podman save, docker save; docker
//	DIR/images/*.tar       or OCI format), found by the names they were
//	                       saved under; a service with build: is built
//	                       from its Dockerfile instead, offline
//	DIR/<env files>      the env_file templates the compose file names
//
// # What a slot image carries
//
//	/usr/lib/containers/storage/          read-only podman image store
//	                                      (overlay driver) with every
//	                                      service's image; units name it
//	                                      as an additional image store
//	/usr/share/containers/systemd/        <service>.container and
//	                                      <volume>.volume Quadlet units
//	/usr/lib/twinroot/containers/bundle.json  the services: name, image
//	                                      reference and ID, dependencies,
//	                                      whether it has a health check,
//	                                      the secrets it uses
//	/usr/lib/twinroot/containers/env/<service>.env  its env template
//
// Images are pinned by image ID (sha256 of the image config, which names
// every layer by its digest): a unit runs exactly the image baked into the
// slot it booted from, with Pull=never, so switching slots switches the
// whole image set at once and nothing needs pruning.
//
// # Env templates and per-device values
//
// A template holds KEY=VALUE lines: the service's env_file lines, then its
// environment entries, which win. A value is literal except for
//
//	${NAME}            the device's value of NAME (an error if it has none)
//	${NAME:-default}   the device's value of NAME, or default
//	${secret:name}     a secret of the device: 32 random bytes in hex,
//	                   made the first time a service needs it and kept
//	$$                 a dollar sign
//
// On the device, under the data partition's twinroot/containers/:
//
//	values.env         the device's values, KEY=VALUE lines (literal)
//	secrets/<name>     each secret (0600, in a 0700 directory)
//
// Each unit's ExecStartPre runs `updater containers env <service>`, which
// writes /run/twinroot/containers/<service>.env (0600) from these on every
// start, so a start never depends on what an earlier start or boot left in
// /run.
package containers

// Paths inside a slot image and on a running device.
const (
	StoreDir      = "/usr/lib/containers/storage"
	UnitDir       = "/usr/share/containers/systemd"
	BundleDir     = "/usr/lib/twinroot/containers"
	BundleFile    = "bundle.json"
	QuadletBin    = "/usr/libexec/podman/quadlet"
	RuntimeEnvDir = "/run/twinroot/containers"
	DeviceDataDir = "/data/twinroot/containers"
)
