package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/manifest"
	"github.com/twinroot/twinroot/internal/release"
)

type signOptions struct {
	image   string
	channel string
	keys    []string
	expires time.Duration
	out     cli.Output
	now     func() time.Time // nil: time.Now
}

func newSignCmd() *cobra.Command {
	o := signOptions{expires: 720 * time.Hour}
	c := &cobra.Command{
		Use:   "sign --image DIR --channel C --key NAME.key",
		Short: "Sign a build's manifest in place for a channel",
		Long: `sign turns DIR/manifest.json, the bare manifest updater build wrote, into
a signed manifest for one channel: it sets the channel, stamps the expiry
(now + --expires; devices refuse an expired manifest, so a stale channel is
noticed), and replaces DIR/manifest.json with the signed envelope (the
exact manifest bytes in base64 and an Ed25519 signature per --key). The
installer ISO and file:// media take DIR as it is then; updater publish
signs the same way.

Before signing it checks DIR/slot.img, DIR/slot.img.zst and DIR/chunks.idx,
those present, against the manifest's sizes and SHA-256 sums: a signature
vouches for the bytes beside it. An already signed DIR/manifest.json is
re-signed: its manifest gets the new channel and expiry, and the old
signatures are dropped. On any error DIR/manifest.json is left as it was.

Give --key twice to sign with an old and a new key during a key rotation.

` + cli.ExitCodesHelp,
		Example: `  updater sign --image out/ --channel stable --key release-2026.key
  updater sign --image out/ --channel beta --key old.key --key new.key --expires 168h`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runSign(c.Context(), o, c.OutOrStdout()) },
	}
	f := c.Flags()
	f.StringVar(&o.image, "image", "", "build output directory holding manifest.json (required)")
	f.StringVar(&o.channel, "channel", "", "release channel, e.g. stable (required)")
	f.StringArrayVar(&o.keys, "key", nil, "private key file NAME.key; repeat to sign with several keys (required)")
	f.DurationVar(&o.expires, "expires", o.expires, "time from now until devices refuse the manifest")
	o.out.AddFlags(f)
	return c
}

type signResult struct {
	Path    string    `json:"path"`
	Channel string    `json:"channel"`
	Version string    `json:"version"`
	Serial  uint64    `json:"serial"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	KeyIDs  []string  `json:"key_ids"`
}

func runSign(ctx context.Context, o signOptions, w io.Writer) error {
	if err := o.out.Validate(); err != nil {
		return err
	}
	if o.image == "" || o.channel == "" || len(o.keys) == 0 {
		return cli.UsageError{Err: errors.New("--image DIR, --channel C and --key NAME.key are required")}
	}
	if err := manifest.ValidChannel(o.channel); err != nil {
		return cli.UsageError{Err: fmt.Errorf("--channel: %w", err)}
	}
	if o.expires <= 0 {
		return cli.UsageError{Err: fmt.Errorf("--expires %s: want a positive duration", o.expires)}
	}
	signers, err := loadSigners(o.keys, "nothing was signed")
	if err != nil {
		return err
	}
	now := time.Now
	if o.now != nil {
		now = o.now
	}
	path := filepath.Join(o.image, manifest.File)
	_, m, err := release.SignDir(ctx, o.image, o.channel, now(), o.expires, signers...)
	if err != nil {
		return err
	}
	var ids []string
	for _, k := range signers {
		ids = append(ids, k.ID)
	}
	r := signResult{Path: path, Channel: m.Channel, Version: m.Version, Serial: m.Serial, Created: m.Created, Expires: m.Expires, KeyIDs: ids}
	if o.out.JSON() {
		return cli.WriteJSON(w, r)
	}
	fmt.Fprintf(w, "signed %s\n  channel  %s\n  version  %s (serial %d)\n  expires  %s (in %s)\n  keys     %v\n",
		r.Path, r.Channel, r.Version, r.Serial, r.Expires.Format(time.RFC3339), o.expires, r.KeyIDs)
	return nil
}
