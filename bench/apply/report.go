package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// rssTarget is the peak RSS an apply should stay under, whatever the
// image size.
const rssTarget = 32 << 20

// writeTable prints the report: per image size, apply beside each stage
// alone and the limit; then the summary the issue asks for (apply/limit
// and peak RSS per size, the first apply after install, rauc install),
// the shell pipeline and the check's bytes.
func writeTable(w io.Writer, rep Report) error {
	fmt.Fprintf(w, "device  %s, slot b at byte %d (%d MiB); server %s on 127.0.0.1; %d cores; medians of %d interleaved runs\n",
		rep.Device, rep.SlotBOff, rep.SlotBSize>>20, rep.Server, rep.Cores, rep.Runs)
	fmt.Fprintf(w, "images  squashfs, uncompressed (updater build --compression none), of random data:")
	for i, s := range rep.Sizes {
		sep := ";"
		if i == len(rep.Sizes)-1 {
			sep = ""
		}
		fmt.Fprintf(w, " %d MiB: slot.img %.1f MB, slot.img.zst %.1f MB in %d chunks%s", s.Image.MiB, mb(s.Image.SlotBytes), mb(s.Image.ObjectBytes), s.Image.Chunks, sep)
	}
	fmt.Fprintf(w, "\n\n")

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(m Measure, bytes int64) {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%.0f\t%.2f\t\n", m.Name, m.WallMed, m.CPUMed, m.KernelMed, mb(bytes)/m.WallMed, m.ApplyOver)
	}
	for _, s := range rep.Sizes {
		fmt.Fprintf(tw, "%d MiB image\twall s\tcpu s\tkernel s\tMB/s\tapply / this\t\n", s.Image.MiB)
		row(s.Apply, s.Image.SlotBytes)
		fmt.Fprintf(tw, "  of which the fetch engine (scan %.2f s)\t%.2f\t\t\t\t\t\n", s.Apply.ScanMed, s.Apply.EngineMed)
		for i, st := range s.Stages {
			n := s.Image.SlotBytes
			if i == 0 {
				n = s.Image.ObjectBytes
			}
			st.Name = "  stage: " + st.Name
			row(st, n)
		}
		l := s.Limit
		fmt.Fprintf(tw, "limit: max(slowest %.2f, cpu %.2f / %d cores)\t%.2f\t\t\t\t%.2f\t\n", l.SlowestS, l.CPUSumS, l.Cores, l.LimitS, l.Ratio)
		t := s.Together
		t.Name = "the four stages at once (" + fmt.Sprintf("%.2f", l.TogetherRatio) + " x limit)"
		row(t, s.Image.SlotBytes)
		fmt.Fprintf(tw, "\t\t\t\t\t\t\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "cpu: the measure's processes' own user+system seconds, MinIO's for the GET and apply, the rauc\n")
	fmt.Fprintf(w, "service's for rauc; kernel: the kernel threads' meanwhile (the loop device's worker copies what\n")
	fmt.Fprintf(w, "dd and apply write). Other processes' CPU is left out. The limit is max(slowest stage alone, the\n")
	fmt.Fprintf(w, "stages' cpu + kernel summed / cores). apply's wall time is the whole updater apply process: start,\n")
	fmt.Fprintf(w, "check of the release, index, fetch engine, arm. apply also hashes every chunk against the signed\n")
	fmt.Fprintf(w, "index before writing it (updater apply --read-back would read the whole slot back as well).\n")
	fmt.Fprintf(w, "A measure during which other processes took more than %.0f%% of the machine was taken again (at most\n", 100*disturbedShare)
	fmt.Fprintf(w, "%d times); %d of %d measures kept were disturbed all the same.\n", retries, rep.Disturbed, rep.Measures)

	fmt.Fprintf(w, "\nsummary\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "image\tapply s\tlimit s\tapply / limit\tengine / limit\tstages at once / limit\tpeak RSS MiB\t")
	for _, s := range rep.Sizes {
		l := s.Limit
		fmt.Fprintf(tw, "%d MiB\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.1f\t\n", s.Image.MiB, l.ApplyS, l.LimitS, l.Ratio, l.EngineRatio, l.TogetherRatio, float64(s.PeakRSS)/(1<<20))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var ratios, rss []string
	for _, s := range rep.Sizes {
		ratios = append(ratios, fmt.Sprintf("%.2f at %d MiB", s.Limit.Ratio, s.Image.MiB))
		rss = append(rss, fmt.Sprintf("%.1f MiB at %d MiB", float64(s.PeakRSS)/(1<<20), s.Image.MiB))
	}
	fmt.Fprintf(w, "apply / limit: %s (target <= 1.1).\n", strings.Join(ratios, ", "))
	fmt.Fprintf(w, "stages at once: the four stages alone started together, as processes that wait on nothing; their\n")
	fmt.Fprintf(w, "  ratio to the limit is what this machine gives work that overlaps perfectly, a floor for apply's.\n")
	fmt.Fprintf(w, "peak RSS of updater apply (wait4's ru_maxrss, the largest run): %s (target < %d MiB, flat).\n", strings.Join(rss, ", "), rssTarget>>20)
	fa := rep.FirstApply
	fmt.Fprintf(w, "first apply after install (%d MiB): slot A's index kept in the state directory as installer install\n", rep.PeersMiB)
	fmt.Fprintf(w, "  seeds it: %.2f s, scan %.3f s; without it apply chunks slot A's %.0f MB first: %.2f s, scan %.2f s.\n",
		fa.Kept.WallMed, fa.Kept.ScanMed, mb(fa.RunningBytes), fa.Scanned.WallMed, fa.Scanned.ScanMed)
	fmt.Fprintf(w, "rauc install of the same %d MiB image: %.2f s from a local bundle, %.2f s over http: apply takes %.2f and %.2f of\n",
		rep.PeersMiB, rep.RAUC.WallMed, rep.RAUCHTTP.WallMed, rep.RAUC.ApplyOver, rep.RAUCHTTP.ApplyOver)
	fmt.Fprintf(w, "  their time (rauc: %s; its cpu includes the service's).\n", rep.RAUC.Command)
	fmt.Fprintf(w, "  RAUC hashes the whole bundle to check its signature, then copies slot.img out of it; it\n")
	fmt.Fprintf(w, "  decompresses nothing and reads nothing back. Its verity format needs device-mapper, absent\n")
	fmt.Fprintf(w, "  here; Debian's build streams no bundle (http: downloaded whole, then installed).\n")
	fmt.Fprintf(w, "shell pipeline (%s): %.2f s; apply takes %.2f of its time.\n", rep.Pipeline.Command, rep.Pipeline.WallMed, rep.Pipeline.ApplyOver)

	c := rep.Check
	fmt.Fprintf(w, "\nno-change updater check: %d bytes on the wire (%d up, %d down, %d connection(s); 304: %v; outcome %s)\n",
		c.NoChangeUp+c.NoChangeDown, c.NoChangeUp, c.NoChangeDown, c.Connections, c.NotModified, c.Outcome)
	fmt.Fprintf(w, "first check (latest.json fetched): %d bytes. Counted by a %s.\n", c.FirstUp+c.FirstDown, c.Counter)
	return nil
}

func mb(n int64) float64 { return float64(n) / 1e6 }
