package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

func writeJSON(w io.Writer, rep Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// writeTable prints the report as aligned tables: apply beside each stage
// alone and the pipeline, the limit, peak RSS and the check's bytes.
func writeTable(w io.Writer, rep Report) error {
	img := rep.Image
	fmt.Fprintf(w, "image   %s: slot.img %.1f MB, slot.img.zst %.1f MB in %d chunks\n",
		img.Format, mb(img.SlotBytes), mb(img.ObjectBytes), img.Chunks)
	fmt.Fprintf(w, "device  %s, slot b at byte %d (%d MiB); server %s on 127.0.0.1; medians of %d interleaved runs\n\n",
		img.Device, img.SlotBOffset, img.SlotBSize>>20, img.Server, rep.Runs)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measure\twall s\tcpu s\tMB/s\tapply / this\t")
	row := func(m Measure, bytes int64) {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.0f\t%.2f\t\n", m.Name, m.WallMed, m.CPUMed, mb(bytes)/m.WallMed, m.ApplyOver)
	}
	row(rep.Apply, img.SlotBytes)
	for i, s := range rep.Stages {
		n := img.SlotBytes
		if i == 0 {
			n = img.ObjectBytes
		}
		row(Measure{Name: "  stage: " + s.Name, WallMed: s.WallMed, CPUMed: s.CPUMed, ApplyOver: s.ApplyOver}, n)
	}
	l := rep.Limit
	fmt.Fprintf(tw, "limit: max(slowest %.2f, cpu %.2f / %d cores)\t%.2f\t\t\t%.2f\t\n", l.SlowestS, l.CPUSumS, l.Cores, l.LimitS, l.Ratio)
	row(rep.Pipeline, img.SlotBytes)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\napply / limit = %.2f (target <= 1.1); slowest stage alone: %s.\n", l.Ratio, l.Slowest)
	fmt.Fprintf(w, "apply's cpu includes MinIO's (%.2f s), as does the GET's and the pipeline's; apply also chunks\n", rep.Apply.ServerCPUMed)
	fmt.Fprintf(w, "the running slot (%.2f s) and reads slot b back to verify it (%.2f s), which no stage does.\n", l.ApplyScan, l.ApplyVfy)
	fmt.Fprintf(w, "pipeline: %s.\n\n", rep.Pipeline.Command)

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "peak RSS of updater apply\timage MB\tpeak RSS MiB\tapply s\truns\t")
	for _, r := range rep.RSS {
		fmt.Fprintf(tw, "%d MiB of random data\t%.1f\t%.1f\t%.2f\t%d\t\n", r.ImageMiB, mb(r.SlotBytes), float64(r.PeakRSS)/(1<<20), r.ApplyS, r.Runs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	c := rep.Check
	fmt.Fprintf(w, "\nno-change updater check: %d bytes on the wire (%d up, %d down, %d connection(s); 304: %v; outcome %s)\n",
		c.NoChangeUp+c.NoChangeDown, c.NoChangeUp, c.NoChangeDown, c.Connections, c.NotModified, c.Outcome)
	fmt.Fprintf(w, "first check (latest.json fetched): %d bytes. Counted by a %s.\n", c.FirstUp+c.FirstDown, c.Counter)
	return nil
}

func mb(n int64) float64 { return float64(n) / 1e6 }
