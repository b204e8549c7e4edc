package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/source"
)

// storeFlags are how a command reaches a release store.
type storeFlags struct{ opts source.Options }

func (s *storeFlags) AddFlags(c *cobra.Command) {
	f := c.Flags()
	f.StringVar(&s.opts.Endpoint, "endpoint", os.Getenv("AWS_ENDPOINT_URL"), "S3 endpoint URL for an S3-compatible store (default: AWS)")
	f.StringVar(&s.opts.Region, "region", "", "S3 region (default: from the AWS environment, else us-east-1)")
	f.StringVar(&s.opts.Profile, "profile", "", "AWS profile (credentials otherwise from the usual AWS environment variables and files)")
}

type publishOptions struct {
	dir      string
	channel  string
	keyFiles []string
	to       string
	expires  time.Duration
	parallel int
	store    storeFlags
	out      cli.Output
	// rollout and rolloutStart stage the release (--rollout, --start).
	rollout      time.Duration
	rolloutStart string
}

func newPublishCmd() *cobra.Command {
	o := publishOptions{expires: 720 * time.Hour}
	c := &cobra.Command{
		Use:   "publish --image DIR --channel C --key NAME.key --to s3://bucket/prefix",
		Short: "Sign a build and upload it to a release store, the manifest last",
		Long: `publish signs DIR for the channel (as updater sign does) and uploads it
under <prefix>/<channel>/: the chunked image object (parallel multipart)
and the index, then <version>/manifest.json, then latest.json last, so no
device ever sees a half-published release. Every object is created only if
absent; latest.json is replaced only if no other publish changed it since
it was read. A serial that is not above the channel's current one, or a
version already published, is refused before anything is uploaded.

--rollout stages the release: devices take it over that time from now,
each at its fixed place in the fleet (a bucket from its machine id, or
device.yaml's canary or late pin), with --start of them at once. A device
outside the share reached so far waits; updater apply --now on a device
takes it anyway.

Credentials come from the usual AWS environment variables and profiles.

` + cli.ExitCodesHelp,
		Example: `  updater publish --image build/v1.4.0 --channel stable --key release.key --to s3://releases/fleet
  updater publish --image out --channel beta --key ci.key --to s3://rel --endpoint http://127.0.0.1:9000
  updater publish --image out --channel stable --key ci.key --to s3://rel --rollout 24h --start 5%

  # in CI, on every merge to main:
  updater build --rootfs rootfs --trust release.pub --version "1.$RUN" --serial "$RUN" --out out
  updater publish --image out --channel stable --key "$RELEASE_KEY" --to "s3://$BUCKET/fleet"`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runPublish(c, o, c.OutOrStdout()) },
	}
	f := c.Flags()
	f.StringVar(&o.dir, "image", "", "build output directory (required)")
	f.StringVar(&o.channel, "channel", "", "release channel (required)")
	f.StringArrayVar(&o.keyFiles, "key", nil, "private key NAME.key (repeatable; required)")
	f.StringVar(&o.to, "to", "", "store: s3://bucket/prefix or file:///path (required)")
	f.DurationVar(&o.expires, "expires", o.expires, "time from now until devices refuse the manifest")
	f.DurationVar(&o.rollout, "rollout", 0, "stage the release: devices take it over this time from now, by their place in the fleet (0: all at once)")
	f.StringVar(&o.rolloutStart, "start", "", "with --rollout, the share of devices that take it at once, like 5%")
	f.IntVar(&o.parallel, "parallel", 4, "parts uploaded at once")
	o.store.AddFlags(c)
	o.out.AddFlags(f)
	for _, r := range []string{"image", "channel", "key", "to"} {
		c.MarkFlagRequired(r)
	}
	return c
}

func runPublish(c *cobra.Command, o publishOptions, w io.Writer) error {
	if err := o.out.Validate(); err != nil {
		return err
	}
	staged, err := o.staged()
	if err != nil {
		return err
	}
	signers, err := loadSigners(o.keyFiles, "nothing published")
	if err != nil {
		return err
	}
	st, err := source.OpenStore(c.Context(), o.to, o.store.opts)
	if err != nil {
		return err
	}
	r, err := release.Publish(c.Context(), st, release.PublishOptions{Dir: o.dir, Channel: o.channel, Signers: signers, TTL: o.expires, Parallel: o.parallel, Rollout: staged})
	if err != nil {
		return err
	}
	if o.out.JSON() {
		return cli.WriteJSON(w, r)
	}
	secs := r.Duration.Seconds()
	fmt.Fprintf(w, "published %s (serial %d, previous %d) to %s in %.1fs (%.1f MB/s)\n", r.Manifest.Version, r.Manifest.Serial, r.Previous, o.to, secs, float64(r.Bytes)/1e6/secs)
	for _, obj := range r.Objects {
		fmt.Fprintf(w, "  %s\n", obj)
	}
	fmt.Fprintf(w, "expires %s\n", r.Manifest.Expires.Format(time.RFC3339))
	if ro := r.Manifest.Rollout; ro != nil {
		fmt.Fprintf(w, "rollout: from %s (%g %% of devices at once) to every device at %s\n",
			ro.Start.Format(time.RFC3339), ro.StartPercent, ro.Start.Add(time.Duration(ro.Duration)).Format(time.RFC3339))
	}
	return nil
}

// staged is the rollout of --rollout and --start, nil without them.
func (o publishOptions) staged() (*manifest.Rollout, error) {
	if o.rollout == 0 && o.rolloutStart == "" {
		return nil, nil
	}
	if o.rollout <= 0 {
		return nil, cli.UsageError{Err: fmt.Errorf("--rollout %s: want a positive duration, like 24h", o.rollout)}
	}
	r := &manifest.Rollout{Duration: manifest.Duration(o.rollout)}
	if o.rolloutStart != "" {
		p, err := percent("start", o.rolloutStart)
		if err != nil {
			return nil, err
		}
		r.StartPercent = p
	}
	return r, nil
}

// percent parses the share of devices of flag name, like 5%: 0 to 100.
func percent(name, v string) (float64, error) {
	p, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), "%"), 64)
	if err != nil || !(p >= 0 && p <= 100) {
		return 0, cli.UsageError{Err: fmt.Errorf("--%s %q: want a share of devices from 0%% to 100%%, like 5%%", name, v)}
	}
	return p, nil
}

type verifyOptions struct {
	channel string
	version string
	pubs    []string
	store   storeFlags
	out     cli.Output
}

func newVerifyCmd() *cobra.Command {
	var o verifyOptions
	c := &cobra.Command{
		Use:   "verify URL --channel C --pub NAME.pub",
		Short: "Fetch a published release as a device would and check every byte",
		Long: `verify fetches <URL>/<channel>/latest.json (or a --version's manifest),
checks its signature and acceptance rules, the index against the manifest,
every chunk of the image object against the index, and the whole image
against the manifest's SHA-256. It says exactly which object, chunk and
offset is wrong if anything is.

` + cli.ExitCodesHelp,
		Example: `  updater verify s3://releases/fleet --channel stable --pub release.pub
  updater verify https://cdn.example.com/fleet --channel beta --version 1.5.0 --pub release.pub`,
		Args: oneURL,
		RunE: func(c *cobra.Command, args []string) error { return runVerify(c, o, args[0], c.OutOrStdout()) },
	}
	f := c.Flags()
	f.StringVar(&o.channel, "channel", "", "release channel (required)")
	f.StringVar(&o.version, "version", "", "verify this version instead of latest.json")
	f.StringArrayVar(&o.pubs, "pub", nil, "trusted public key NAME.pub (repeatable; required)")
	o.store.AddFlags(c)
	o.out.AddFlags(f)
	c.MarkFlagRequired("channel")
	c.MarkFlagRequired("pub")
	return c
}

func runVerify(c *cobra.Command, o verifyOptions, url string, w io.Writer) error {
	if err := o.out.Validate(); err != nil {
		return err
	}
	pubs, err := loadPublics(o.pubs)
	if err != nil {
		return err
	}
	ring, err := keys.NewRing(pubs...)
	if err != nil {
		return err
	}
	src, err := source.Open(c.Context(), url, o.store.opts)
	if err != nil {
		return err
	}
	r, err := release.Verify(c.Context(), src, release.VerifyOptions{Channel: o.channel, Version: o.version, Trusted: ring})
	if err != nil {
		return err
	}
	if o.out.JSON() {
		return cli.WriteJSON(w, r)
	}
	m := r.Manifest
	fmt.Fprintf(w, "ok: %s %s (serial %d), %d chunks, %d bytes fetched, image sha256 %s, expires %s\n",
		m.Channel, m.Version, m.Serial, r.Chunks, r.Fetched, m.Image.SHA256, m.Expires.Format(time.RFC3339))
	return nil
}
