package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// writeTable prints the report as aligned tables: apply beside each stage
// alone, the pipeline and rauc install, the limit, peak RSS and the
// check's bytes.
func writeTable(w io.Writer, rep Report) error {
	img := rep.Image
	fmt.Fprintf(w, "image   %s: slot.img %.1f MB, slot.img.zst %.1f MB in %d chunks\n",
		img.Format, mb(img.SlotBytes), mb(img.ObjectBytes), img.Chunks)
	fmt.Fprintf(w, "device  %s, slot b at byte %d (%d MiB); server %s on 127.0.0.1; medians of %d interleaved runs\n\n",
		img.Device, img.SlotBOffset, img.SlotBSize>>20, img.Server, rep.Runs)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measure\twall s\tcpu s\tmachine cpu s\tMB/s\tapply / this\t")
	row := func(m Measure, bytes int64) {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%.0f\t%.2f\t\n", m.Name, m.WallMed, m.CPUMed, m.MachineMed, mb(bytes)/m.WallMed, m.ApplyOver)
	}
	row(rep.Apply, img.SlotBytes)
	for i, s := range rep.Stages {
		n := img.SlotBytes
		if i == 0 {
			n = img.ObjectBytes
		}
		s.Name = "  stage: " + s.Name
		row(s, n)
	}
	l := rep.Limit
	fmt.Fprintf(tw, "limit: max(slowest %.2f, machine cpu %.2f / %d cores)\t%.2f\t\t\t\t%.2f\t\n", l.SlowestS, l.MachineSumS, l.Cores, l.LimitS, l.Ratio)
	fmt.Fprintf(tw, "  with the stages' own cpu: max(%.2f, %.2f / %d)\t%.2f\t\t\t\t%.2f\t\n", l.SlowestS, l.CPUSumS, l.Cores, l.ProcessLimitS, l.ProcessRatio)
	row(rep.Pipeline, img.SlotBytes)
	row(rep.RAUC, img.SlotBytes)
	row(rep.RAUCHTTP, img.SlotBytes)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\napply / limit = %.2f (target <= 1.1); slowest stage alone: %s.\n", l.Ratio, l.Slowest)
	fmt.Fprintf(w, "machine cpu: every process's and kernel thread's CPU time while the measure ran (/proc/stat);\n")
	fmt.Fprintf(w, "it counts the loop device's worker, which copies what dd and apply write, and a quiet machine's\n")
	fmt.Fprintf(w, "idle services. cpu: the measure's processes' own (and MinIO's where noted).\n")
	fmt.Fprintf(w, "apply's cpu includes MinIO's (%.2f s), as does the GET's and the pipeline's; apply also chunks\n", rep.Apply.ServerCPUMed)
	fmt.Fprintf(w, "the running slot (%.2f s) and reads back what an earlier run wrote (%.2f s), which no stage does;\n", l.ApplyScan, l.ApplyVfy)
	fmt.Fprintf(w, "it hashes every chunk against the signed index before writing it (updater apply --read-back\n")
	fmt.Fprintf(w, "would read the whole slot back as well). Of apply's %.2f s, %.2f s are its fetch engine (scan,\n", rep.Apply.WallMed, l.ApplyEngine)
	fmt.Fprintf(w, "stream, read-back); the rest starts the process, checks the release, fetches the index and arms.\n")
	fmt.Fprintf(w, "pipeline: %s.\n", rep.Pipeline.Command)
	fmt.Fprintf(w, "rauc: %s; its cpu includes the service's.\n", rep.RAUC.Command)
	fmt.Fprintf(w, "rauc http: %s.\n", rep.RAUCHTTP.Command)
	fmt.Fprintf(w, "RAUC hashes the whole bundle to check its signature, then copies slot.img out of it; it\n")
	fmt.Fprintf(w, "decompresses nothing and reads nothing back. Its verity format needs device-mapper, absent here;\n")
	fmt.Fprintf(w, "Debian's build streams no bundle.\n\n")

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
