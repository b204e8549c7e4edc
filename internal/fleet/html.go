package fleet

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"time"
)

//go:embed report.html.tmpl
var pageText string

var page = template.Must(template.New("fleet").Funcs(template.FuncMap{
	"pct": func(part, whole int) template.CSS {
		if whole <= 0 {
			return "0%"
		}
		return template.CSS(fmt.Sprintf("%.3f%%", 100*float64(part)/float64(whole)))
	},
	"share": func(f float64) string { return fmt.Sprintf("%.1f %%", max(f, 0)*100) },
	"width": func(f float64) template.CSS { return template.CSS(fmt.Sprintf("%.3f%%", 100*min(max(f, 0), 1))) },
	"sub":   func(a, b int) int { return a - b },
	"when":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") },
	"complete": func(l *Latest) string {
		if l.Rollout == nil {
			return ""
		}
		return l.Rollout.Start.Add(time.Duration(l.Rollout.Duration)).UTC().Format("2006-01-02 15:04 MST")
	},
}).Parse(pageText))

// WriteHTML writes s as one self-contained page (no script, no outside
// resource): the rollout's progress, the devices per version, and each
// release's outcomes as bars, with the reasons of its failures.
func WriteHTML(w io.Writer, s Summary) error {
	most := 0
	for _, r := range s.Releases {
		most = max(most, r.Tried)
	}
	return page.Execute(w, struct {
		Summary
		MaxTried int
	}{s, most})
}
