package awssim

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/topology"
)

// clients builds real SDK clients for an endpoint, as ferry's activities do.
type clients struct {
	endpoint string
	cfg      aws.Config
}

func newClients(t *testing.T, endpoint string, noRetry bool) *clients {
	t.Helper()
	opts := []func(*config.LoadOptions) error{
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithRegion("eu-west-1"),
	}
	if noRetry {
		opts = append(opts, config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }))
	}
	cfg, err := config.LoadDefaultConfig(context.Background(), opts...)
	require.NoError(t, err)
	return &clients{endpoint: endpoint, cfg: cfg}
}

func (c *clients) ec2(region string) *ec2.Client {
	return ec2.NewFromConfig(c.cfg, func(o *ec2.Options) {
		o.BaseEndpoint = aws.String(c.endpoint)
		o.Region = region
	})
}

func (c *clients) r53() *route53.Client {
	return route53.NewFromConfig(c.cfg, func(o *route53.Options) {
		o.BaseEndpoint = aws.String(c.endpoint)
		o.Region = "us-east-1"
	})
}

func (c *clients) cw(region string) *cloudwatch.Client {
	return cloudwatch.NewFromConfig(c.cfg, func(o *cloudwatch.Options) {
		o.BaseEndpoint = aws.String(c.endpoint)
		o.Region = region
	})
}

type simOpts struct {
	limits, prior bool
	faults        *control.Registry
	copyPerGiB    time.Duration
	insync        time.Duration
	appHealthy    func(string) bool
	appErrorRate  func(string) (float64, bool)
}

// startSim serves a seeded Server on an httptest listener.
func startSim(t *testing.T, o simOpts) (*Server, *clients, *clients) {
	t.Helper()
	topo := topology.Default()
	srv := New(Options{
		Account: topo.Account, Regions: topo.Regions,
		CopyTimePerGiB: o.copyPerGiB, Route53InsyncDelay: o.insync, InstanceStartTime: 20 * time.Millisecond,
		Limits: o.limits, PriorRequestNotComplete: o.prior, Faults: o.faults,
		AppHealthy: o.appHealthy, AppErrorRate: o.appErrorRate,
	})
	require.NoError(t, srv.Seed(topo))
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return srv, newClients(t, hs.URL, false), newClients(t, hs.URL, true)
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// eventually polls cond until it holds or the deadline passes (no fixed sleeps).
func eventually(t *testing.T, within time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", within, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type rawResp struct {
	status int
	body   string
}

func httpPost(url, form string) (rawResp, error) {
	resp, err := http.Post(url+"/", "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		return rawResp{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return rawResp{resp.StatusCode, string(b)}, err
}
