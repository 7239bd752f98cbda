package awssim

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAWSCLIReadsTheSandbox checks the sandbox against botocore's serializers and parsers
// (AWS CLI v1), a second independent client besides aws-sdk-go-v2.
func TestAWSCLIReadsTheSandbox(t *testing.T) {
	bin, err := exec.LookPath("aws")
	if err != nil {
		t.Skip("aws CLI not on PATH")
	}
	srv, c, _ := startSim(t, simOpts{})
	zone, ok := srv.ZoneID("shop.example.")
	require.True(t, ok)
	run := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--endpoint-url", c.endpoint, "--output", "json"}, args...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_DEFAULT_REGION=eu-west-1",
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	out := run("ec2", "describe-images", "--region", "eu-west-1", "--owners", "self")
	assert.Contains(t, out, "ami-0a1b2c3d4e5f60001")
	assert.Contains(t, out, "shop-worker")

	out = run("route53", "list-resource-record-sets", "--hosted-zone-id", zone)
	assert.Contains(t, out, "www.shop.example.")
	assert.Contains(t, out, `"SetIdentifier": "eu-west-2"`)

	out = run("cloudwatch", "describe-alarms", "--region", "eu-west-2", "--alarm-names", "shop-eu-west-2-5xx")
	assert.Contains(t, out, "shop-eu-west-2-5xx")
}

// TestCloudWatchQueryProtocol covers older clients that send CloudWatch as Query.
func TestCloudWatchQueryProtocol(t *testing.T) {
	_, c, _ := startSim(t, simOpts{})
	req, err := http.NewRequest(http.MethodPost, c.endpoint+"/", strings.NewReader("Action=DescribeAlarms&Version=2010-08-01&AlarmNames.member.1=shop-eu-west-1-5xx"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20261122/eu-west-1/monitoring/aws4_request, SignedHeaders=host, Signature=x")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(b), "<DescribeAlarmsResult><CompositeAlarms></CompositeAlarms><MetricAlarms><member>")
	assert.Contains(t, string(b), "<AlarmName>shop-eu-west-1-5xx</AlarmName>")
}
