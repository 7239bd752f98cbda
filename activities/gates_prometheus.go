package activities

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// PrometheusCheck is an instant PromQL query whose value must meet Condition.
type PrometheusCheck struct {
	Address   string
	Query     string
	Condition Condition
	// Series is how several series are judged: "every" (or "") each must meet the
	// condition; "max", "min", "sum", "avg" reduce them to one value first.
	Series      string
	BearerToken Secret // optional
	CAFile      string // optional PEM bundle on the worker
	Timeout     time.Duration
}

// SeriesModes are the accepted values of PrometheusCheck.Series.
var SeriesModes = []string{"every", "max", "min", "sum", "avg"}

// bearer adds the Authorization header; the token is read on the worker for each
// evaluation, so a rotated file is picked up without a restart.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// prometheus asks the server once. What the query cannot tell (nothing matched, NaN, the
// server unreachable or overloaded) is inconclusive: a missing number is not a healthy one,
// and not proof of a broken target either. A query the server refuses as malformed is a
// configuration error: no retry can fix it.
func (g *Gates) prometheus(ctx context.Context, p PrometheusCheck) (Verdict, string, error) {
	u, err := url.Parse(p.Address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return VerdictFail, "", configErr("prometheus address %q is not an absolute http(s) URL", p.Address)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	if p.CAFile != "" {
		pem, err := os.ReadFile(p.CAFile)
		if err != nil {
			return VerdictFail, "", configErr("prometheus caFile: read %s on this worker: %v", p.CAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return VerdictFail, "", configErr("prometheus caFile %s holds no PEM certificate", p.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	var rt http.RoundTripper = tr
	if p.BearerToken.Set() {
		tok, err := p.BearerToken.Resolve("bearerToken")
		if err != nil {
			return VerdictFail, "", configErr("prometheus %v", err)
		}
		rt = bearer{token: tok, next: tr}
	}
	client, err := promapi.NewClient(promapi.Config{Address: p.Address, RoundTripper: rt})
	if err != nil {
		return VerdictFail, "", configErr("prometheus address %q: %v", p.Address, err)
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	val, _, err := promv1.NewAPI(client).Query(qctx, p.Query, time.Now(), promv1.WithTimeout(timeout))
	if err != nil {
		if ctx.Err() != nil {
			return VerdictFail, "", ctx.Err()
		}
		var pe *promv1.Error
		if errors.As(err, &pe) && pe.Type == promv1.ErrBadData {
			return VerdictFail, "", configErr("prometheus refused the query %q: %s", p.Query, pe.Msg)
		}
		return VerdictInconclusive, fmt.Sprintf("prometheus %s could not answer: %v", p.Address, err), nil
	}
	return judgeSeries(val, p)
}

// judgeSeries applies the condition to an instant query's result.
func judgeSeries(val model.Value, p PrometheusCheck) (Verdict, string, error) {
	type point struct {
		name string
		v    float64
	}
	var points []point
	switch r := val.(type) {
	case *model.Scalar:
		points = append(points, point{"scalar", float64(r.Value)})
	case model.Vector:
		for _, s := range r {
			points = append(points, point{s.Metric.String(), float64(s.Value)})
		}
	default:
		return VerdictFail, "", configErr("prometheus query %q returns a %s; a gate needs an instant vector or a scalar (no range selector at the top level)", p.Query, val.Type())
	}
	if len(points) == 0 {
		return VerdictInconclusive, fmt.Sprintf("query returned no series (nothing matched %q)", p.Query), nil
	}
	mode := p.Series
	if mode == "" {
		mode = "every"
	}
	if !slices.Contains(SeriesModes, mode) {
		return VerdictFail, "", configErr("prometheus series %q: use one of %s", mode, strings.Join(SeriesModes, ", "))
	}
	var values []float64
	for _, pt := range points {
		if !math.IsNaN(pt.v) {
			values = append(values, pt.v)
		}
	}
	if mode == "every" {
		var bad []string
		for _, pt := range points {
			if !math.IsNaN(pt.v) && !p.Condition.Met(pt.v) {
				bad = append(bad, fmt.Sprintf("%s = %.4g", pt.name, pt.v))
			}
		}
		switch {
		case len(bad) > 0:
			return VerdictFail, fmt.Sprintf("%d of %d series not %s: %s", len(bad), len(points), p.Condition, strings.Join(first(bad, 3), "; ")), nil
		case len(values) < len(points):
			return VerdictInconclusive, fmt.Sprintf("%d of %d series are NaN (no data to divide, e.g. no requests)", len(points)-len(values), len(points)), nil
		}
		if len(points) == 1 {
			return VerdictPass, fmt.Sprintf("%.4g %s", points[0].v, p.Condition), nil
		}
		return VerdictPass, fmt.Sprintf("all %d series %s", len(points), p.Condition), nil
	}
	if len(values) == 0 {
		return VerdictInconclusive, fmt.Sprintf("all %d series are NaN (no data to divide, e.g. no requests)", len(points)), nil
	}
	v := reduce(mode, values)
	detail := fmt.Sprintf("%s over %d series = %.4g, want %s", mode, len(values), v, p.Condition)
	if p.Condition.Met(v) {
		return VerdictPass, detail, nil
	}
	return VerdictFail, detail, nil
}

func reduce(mode string, vs []float64) float64 {
	out := vs[0]
	sum := 0.0
	for _, v := range vs {
		sum += v
		switch mode {
		case "max":
			out = max(out, v)
		case "min":
			out = min(out, v)
		}
	}
	switch mode {
	case "sum":
		return sum
	case "avg":
		return sum / float64(len(vs))
	}
	return out
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}
