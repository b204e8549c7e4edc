package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"

	"github.com/twinroot/twinroot/internal/source"
)

// stageArg makes the bench binary run one stage alone: `apply-bench
// -stage NAME ARGS...`. The Go stages use the libraries the updater uses.
const stageArg = "-stage"

const (
	stageGet    = "get"    // URL KEY: GET the object, discard the body
	stageUnzstd = "unzstd" // FILE: decompress, discard the output
	stageSHA256 = "sha256" // FILE: print the SHA-256
)

func runStage(ctx context.Context, name string, args []string) error {
	switch {
	case name == stageGet && len(args) == 2:
		// Credentials and endpoint come from the environment (AWS_*).
		src, err := source.Open(ctx, args[0], source.Options{})
		if err != nil {
			return err
		}
		body, _, err := src.Get(ctx, args[1], "")
		if err != nil {
			return fmt.Errorf("get %s: %w", args[1], err)
		}
		defer body.Close()
		n, err := io.Copy(io.Discard, body)
		if err != nil {
			return fmt.Errorf("get %s: %w", args[1], err)
		}
		fmt.Println(n)
		return nil
	case name == stageUnzstd && len(args) == 1:
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		// One goroutine, as the updater decodes each frame in its stream.
		dec, err := zstd.NewReader(bufio.NewReaderSize(f, 1<<20), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return err
		}
		defer dec.Close()
		n, err := io.Copy(io.Discard, dec)
		if err != nil {
			return fmt.Errorf("decompress %s: %w", args[0], err)
		}
		fmt.Println(n)
		return nil
	case name == stageSHA256 && len(args) == 1:
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return fmt.Errorf("hash %s: %w", args[0], err)
		}
		fmt.Println(hex.EncodeToString(h.Sum(nil)))
		return nil
	}
	return fmt.Errorf("unknown stage %q with %d arguments", name, len(args))
}
