package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// writeTable prints the report as an aligned table: twinroot's figure, the
// peer's, and their ratio (twinroot over peer).
func writeTable(w io.Writer, rep Report) error {
	r, img := rep.Root, rep.Image
	fmt.Fprintf(w, "root    %.1f MB in %d files (seed %d)\n", mb(r.Bytes), r.Files, r.Seed)
	fmt.Fprintf(w, "image   slot.img %.1f MB; slot.img.zst %.1f MB (%.3f of slot.img) in %d chunks (mean %.0f KiB); chunks.idx %d bytes\n\n",
		mb(img.SlotBytes), mb(img.ObjectBytes), img.ObjectRatio, img.Chunks, float64(img.SlotBytes)/float64(max(img.Chunks, 1))/1024, img.IndexBytes)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\ttwinroot\t\tpeer\t\tratio\truns")
	b := rep.Build
	fmt.Fprintf(tw, "build time (%s)\tupdater build\t%.1f s\tmksquashfs alone\t%.1f s\t%.2f\t%d\n",
		b.Compression, b.UpdaterMed, b.MksqMed, b.Ratio, b.Runs)
	for _, p := range rep.Publish {
		fmt.Fprintf(tw, "publish throughput (%s)\tupdater publish\t%.1f MB/s\taws s3 cp\t%.1f MB/s\t%.2f\t%d\n",
			p.Server, p.PublishMBps, p.AWSMBps, p.Ratio, p.Runs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nratio: twinroot over peer, medians of interleaved runs (time: lower is better; MB/s: higher is better).")
	fmt.Fprintln(w, "build = mksquashfs + content-defined chunking + zstd per chunk + index; publish = image, index,")
	fmt.Fprintln(w, "manifest and latest.json with conditional puts; aws s3 cp = slot.img.zst alone. Wall times include process start.")
	if b.Reproducible != nil {
		fmt.Fprintf(w, "reproducible: %v (%d builds, byte for byte)\n", *b.Reproducible, b.Runs)
	}
	for _, p := range rep.Publish {
		fmt.Fprintf(w, "%s: updater verify accepted the last publish: %v\n", p.Server, p.Verified)
	}
	return nil
}

func mb(n int64) float64 { return float64(n) / 1e6 }
