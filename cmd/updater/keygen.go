package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/twinroot/twinroot/internal/cli"
	"github.com/twinroot/twinroot/internal/keys"
)

type keygenOptions struct {
	out  string
	fmt  cli.Output
	rand io.Reader // nil: crypto/rand
}

func newKeygenCmd() *cobra.Command {
	var o keygenOptions
	c := &cobra.Command{
		Use:   "keygen --out NAME",
		Short: "Make an Ed25519 key pair for signing a channel's releases",
		Long: `keygen writes a new Ed25519 key pair: NAME.key, the private key (mode
0600; keep it in your CI's secret store, never in the image), and NAME.pub,
the public key (bake it into images with updater build --trust NAME.pub).
Both files carry the key id that signatures name. An existing file is never
overwritten.

` + cli.ExitCodesHelp,
		Example: `  updater keygen --out release-2026
  updater build --rootfs root/ --trust release-2026.pub --version 1.0.0 --serial 1 --out out/`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runKeygen(o, c.OutOrStdout()) },
	}
	f := c.Flags()
	f.StringVar(&o.out, "out", "", "base name of the key files: writes NAME.key and NAME.pub (required)")
	o.fmt.AddFlags(f)
	return c
}

type keygenResult struct {
	KeyID   string `json:"key_id"`
	Private string `json:"private"`
	Public  string `json:"public"`
}

func runKeygen(o keygenOptions, w io.Writer) error {
	if err := o.fmt.Validate(); err != nil {
		return err
	}
	if o.out == "" {
		return cli.UsageError{Err: errors.New("--out NAME is required")}
	}
	k, err := keys.Generate(o.rand)
	if err != nil {
		return err
	}
	priv, pub, err := keys.Save(o.out, k)
	if err != nil {
		return err
	}
	r := keygenResult{KeyID: k.ID, Private: priv, Public: pub}
	if o.fmt.JSON() {
		return cli.WriteJSON(w, r)
	}
	fmt.Fprintf(w, "key id   %s\nprivate  %s (mode 0600: keep it secret)\npublic   %s (updater build --trust %s)\n", r.KeyID, r.Private, r.Public, r.Public)
	return nil
}
