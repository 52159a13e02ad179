package main

import (
	"encoding/json"
	"fmt"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// chart draws each proxy's median as a ratio to direct, grouped by figure,
// with the line at 1.0 (the direct path).
func (r *runner) chart(path string) error {
	figs := []struct{ label, metric string }{
		{"HTTPS conn/s", mHTTPSRate}, {"HTTP conn/s", mHTTPRate},
		{"bulk 1 stream", mBulk1}, {"bulk 8 streams", mBulk8},
	}
	p := plot.New()
	p.Title.Text = "egressfw benchmark: throughput as a ratio to direct (higher is better)"
	p.Y.Label.Text = "× direct"
	p.Y.Min, p.Y.Max = 0, 1.35 // room for the legend above the 1.0 (direct) line
	w := vg.Points(22)
	for i, name := range proxies {
		vals := make(plotter.Values, len(figs))
		for j, f := range figs {
			if d := r.med("direct", f.metric); d > 0 {
				vals[j] = r.med(name, f.metric) / d
			}
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return fmt.Errorf("bars for %s: %w", name, err)
		}
		bars.LineStyle.Width = vg.Length(0)
		bars.Color = plotutil.Color(i)
		bars.Offset = w * vg.Length(i-1)
		p.Add(bars)
		p.Legend.Add(name, bars)
	}
	one := plotter.NewFunction(func(float64) float64 { return 1 })
	one.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(one)
	p.Legend.Add("direct", one)
	p.Legend.Top = true
	labels := make([]string, len(figs))
	for i, f := range figs {
		labels[i] = f.label
	}
	p.NominalX(labels...)
	if err := p.Save(8*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return fmt.Errorf("save chart: %w", err)
	}
	return nil
}

// replot redraws the chart from a run's results/samples.json.
func replot(samplesPath, out string) error {
	b, err := os.ReadFile(samplesPath)
	if err != nil {
		return fmt.Errorf("read samples: %w", err)
	}
	var saved struct {
		Samples samples `json:"samples"`
	}
	if err := json.Unmarshal(b, &saved); err != nil {
		return fmt.Errorf("decode samples: %w", err)
	}
	return (&runner{s: saved.Samples}).chart(out)
}
