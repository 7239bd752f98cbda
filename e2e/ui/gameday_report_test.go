//go:build uitest

package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ferryhq/ferry/internal/gamereport"
	"github.com/ferryhq/ferry/workflows"
)

// TestGameDayReportInChromium renders the report of a real GameDay (the informed example
// played on `ferry dev`, its record kept in internal/gamereport/testdata) and reads it back
// in headless Chromium as a person would see it: the page renders offline, each chart has
// one band per fault, and the scorecard shows the JSON's numbers. The screenshot is left
// in bin/test-ui/gameday-report.png.
func TestGameDayReportInChromium(t *testing.T) {
	exe := chromium(t)
	shots := artefacts(t)
	b, err := os.ReadFile(filepath.Join("..", "..", "internal", "gamereport", "testdata", "ferry-dev-informed-run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var run workflows.GameDayRun
	if err := json.Unmarshal(b, &run); err != nil {
		t.Fatal(err)
	}
	r := gamereport.Build(run)
	page, err := gamereport.HTML(r)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(shots, "gameday-report.html")
	if err := os.WriteFile(path, page, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	br := newBrowser(t, ctx, exe, shots)

	type row struct{ TTD, TTM, TTR, Score string }
	type shown struct {
		Bands, Charts, Lines int
		ChartWidth           float64
		Rows                 []row
		MeanScore            string
	}
	if _, err := chromedp.Run(br.ctx, chromedp.Navigate("file://"+path)); err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	got, err := chromedp.Run(br.ctx, chromedp.Evaluate[shown](`(() => ({
		Bands: document.querySelectorAll('svg.timeline rect.fault-band').length,
		Charts: document.querySelectorAll('svg.timeline').length,
		Lines: document.querySelectorAll('svg.timeline polyline.error-rate').length,
		ChartWidth: document.querySelector('svg.timeline').getBoundingClientRect().width,
		Rows: [...document.querySelectorAll('#scorecard tbody tr')].map(tr => ({
			TTD: tr.querySelector('.ttd').innerText, TTM: tr.querySelector('.ttm').innerText,
			TTR: tr.querySelector('.ttr').innerText, Score: tr.querySelector('.score').innerText})),
		MeanScore: document.querySelector('#mean-score').innerText,
	}))()`))
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	shot, err := chromedp.Run(br.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	png := filepath.Join(shots, "gameday-report.png")
	if err := os.WriteFile(png, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("report %s, screenshot %s", path, png)

	ran := 0
	for _, x := range r.Experiments {
		if !x.Start.IsZero() {
			ran++
		}
	}
	if got.Charts != len(r.Experiments) || got.Bands != ran || got.Lines != len(r.Experiments) {
		t.Errorf("charts %d, fault bands %d, error-rate lines %d; want %d charts, a band per fault that ran (%d)", got.Charts, got.Bands, got.Lines, len(r.Experiments), ran)
	}
	if got.ChartWidth < 300 {
		t.Errorf("the chart renders %.0f px wide", got.ChartWidth)
	}
	if len(got.Rows) != len(r.Experiments) {
		t.Fatalf("scorecard rows %d, experiments %d", len(got.Rows), len(r.Experiments))
	}
	for i, x := range r.Experiments {
		want := row{gamereport.Secs(x.TTDSec), gamereport.Secs(x.TTMSec), gamereport.Secs(x.TTRSec), fmt.Sprintf("%.1f", x.Score)}
		if got.Rows[i] != want {
			t.Errorf("experiment %d: the page shows %+v, the JSON says %+v", i, got.Rows[i], want)
		}
	}
	if want := fmt.Sprintf("%.1f", r.MeanScore); got.MeanScore != want {
		t.Errorf("mean score: page %q, JSON %q", got.MeanScore, want)
	}
}
