package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// writeTable prints one block per pair: the image, then what twinroot,
// casync and the ideal cost, and the ratios.
func writeTable(w io.Writer, rep Report) error {
	p := rep.Params
	fmt.Fprintf(w, "chunks  %d KiB..%d KiB, average bits %d\n", p.MinSize>>10, p.MaxSize>>10, p.AverageBits)
	for _, r := range rep.Pairs {
		img := r.Image
		fmt.Fprintf(w, "\n%s: %s -> %s, %s\n", r.Name, r.From, r.To, r.Change)
		fmt.Fprintf(w, "image   slot.img %s, slot.img.zst %s in %d chunks (mean %.0f KiB); %d files changed or added, %s raw\n",
			mb(img.SlotBytes), mb(img.ObjectBytes), img.Chunks, float64(img.SlotBytes)/float64(max(img.Chunks, 1))/1024,
			r.Changed.Count, mb(r.Changed.RawBytes))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		t, c := r.Twinroot, r.Casync
		fmt.Fprintln(tw, "delta\tbytes\tdata\tindex\tover ideal\tover casync\t")
		fmt.Fprintf(tw, "twinroot (fetch.Apply)\t%d\t%d\t%d\t%.2f\t%.2f\t\n", t.Total, t.Fetched, t.IndexBytes, r.TwinrootOverIdeal, r.TwinrootOverCasync)
		fmt.Fprintf(tw, "casync (new chunks + index)\t%d\t%d\t%d\t%.2f\t1.00\t\n", c.Total, c.ChunkBytes, c.IndexBytes, r.CasyncOverIdeal)
		fmt.Fprintf(tw, "ideal (changed files, xz -6)\t%d\t%d\t\t1.00\t%.2f\t\n", r.Ideal, r.Ideal, float64(r.Ideal)/float64(c.Total))
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "twinroot: %d chunks fetched in %d requests, %s reused; without coalescing (MaxGap -1) %d bytes in %d requests: %d gap bytes read and thrown away\n",
			t.FetchedChunks, t.Requests, mb(t.ReusedRaw), t.NoGap, t.NoGapRequests, t.GapBytes)
		for _, g := range t.Gaps {
			fmt.Fprintf(w, "twinroot with MaxGap %d KiB: %d bytes in %d requests (%d gap bytes)\n", g.MaxGap>>10, g.Fetched, g.Requests, g.Fetched-t.NoGap)
		}
		fmt.Fprintf(w, "casync: %d new chunks\n", c.NewChunks)
	}
	fmt.Fprintln(w, "\nbytes: what crosses the network for the update. twinroot: fetch.Stats.FetchedCompressed")
	fmt.Fprintln(w, "(default coalescing gap) plus chunks.idx; casync: the chunk files casync make adds to a store")
	fmt.Fprintln(w, "holding the old image's, plus the new .caibx; ideal: every changed or added regular file")
	fmt.Fprintln(w, "compressed alone with xz -6, summed (links, directories and squashfs tables cost nothing in it).")
	return nil
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
