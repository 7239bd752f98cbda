package awssim

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/sandbox/control"
)

// permanent checks that err is the service's permission error as the SDK surfaces it: a
// smithy.APIError with code, answered with HTTP 403.
func permanent(t *testing.T, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	require.True(t, errors.As(err, &ae), "want a smithy.APIError, got %T: %v", err, err)
	assert.Equal(t, code, ae.ErrorCode())
	assert.Contains(t, ae.ErrorMessage(), "is not authorized to perform")
	var re *awshttp.ResponseError
	require.True(t, errors.As(err, &re), "%v", err)
	assert.Equal(t, http.StatusForbidden, re.HTTPStatusCode())
}

// rawSigned sends a request with a SigV4-looking Authorization header for region and
// service scope (the sandbox checks no signatures) and returns status and body.
func rawSigned(t *testing.T, method, url, region, service, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20261122/"+region+"/"+service+"/aws4_request, SignedHeaders=host, Signature=x")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestDeniedOnEC2AfterTwoMutatingCalls(t *testing.T) {
	reg := control.NewRegistry(nil, 1)
	// The SDK's standard retryer: a permission error must come back at once, not retried.
	srv, c, _ := startSim(t, simOpts{faults: reg})
	e := c.ec2("eu-west-1")
	f, err := reg.Add(control.Fault{Target: "aws:ec2:mutating", Kind: control.KindDenied, After: 2})
	require.NoError(t, err)

	tag := &ec2.CreateTagsInput{Resources: []string{"ami-0a1b2c3d4e5f60001"}, Tags: []types.Tag{{Key: aws.String("n"), Value: aws.String("v")}}}
	for range 2 {
		_, err = e.CreateTags(ctx, tag)
		require.NoError(t, err, "the first two mutating calls go through")
	}
	_, err = e.DescribeImages(ctx, &ec2.DescribeImagesInput{})
	require.NoError(t, err, "reads neither fire nor count")
	in := &ec2.CopyImageInput{SourceRegion: aws.String("eu-west-1"), SourceImageId: aws.String("ami-0a1b2c3d4e5f60001"), Name: aws.String("copy-1")}
	_, err = e.CopyImage(ctx, in)
	permanent(t, err, "UnauthorizedOperation")
	_, err = e.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String("ami-0a1b2c3d4e5f60001")})
	permanent(t, err, "UnauthorizedOperation")
	_, err = e.DescribeImages(ctx, &ec2.DescribeImagesInput{})
	require.NoError(t, err, "reads still work")

	copies := srv.Calls(control.CallFilter{Operation: "CopyImage"})
	require.Len(t, copies, 1, "the SDK did not retry")
	assert.Equal(t, "UnauthorizedOperation", copies[0].Result)
	var results []string
	for _, call := range srv.Calls(control.CallFilter{Service: "ec2"}) {
		results = append(results, call.Operation+"="+call.Result)
	}
	assert.Equal(t, []string{"CreateTags=ok", "CreateTags=ok", "CopyImage=UnauthorizedOperation", "DeregisterImage=UnauthorizedOperation"}, results)
	list := reg.List()
	require.Len(t, list, 1)
	assert.Equal(t, f.ID, list[0].ID)
	assert.Equal(t, 2, list[0].Fired, "only firings count")

	// EC2's own XML error shape, as for its other errors.
	status, body := rawSigned(t, http.MethodPost, c.endpoint+"/", "eu-west-1", "ec2", "application/x-www-form-urlencoded",
		"Action=CreateTags&Version=2016-11-15&ResourceId.1=ami-0a1b2c3d4e5f60001&Tag.1.Key=a&Tag.1.Value=b")
	assert.Equal(t, http.StatusForbidden, status)
	assert.Contains(t, body, "<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.")
	assert.Contains(t, body, "ec2:CreateTags")
	assert.Contains(t, body, "</Errors><RequestID>")
}

func TestDeniedOnRoute53AndCloudWatch(t *testing.T) {
	reg := control.NewRegistry(nil, 1)
	srv, c, _ := startSim(t, simOpts{faults: reg})
	r := c.r53()
	zone, ok := srv.ZoneID("shop.example")
	require.True(t, ok)
	_, err := reg.Add(control.Fault{Target: "aws:route53:mutating", Kind: control.KindDenied, After: 1, Count: 1})
	require.NoError(t, err)

	change := func(w int64) error {
		_, err := r.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(zone),
			ChangeBatch: &r53types.ChangeBatch{Changes: []r53types.Change{weighted(r53types.ChangeActionUpsert, "eu-west-2", w, "198.51.100.20")}}})
		return err
	}
	require.NoError(t, change(10), "the first mutating call goes through")
	_, err = r.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zone)})
	require.NoError(t, err)
	permanent(t, change(20), "AccessDenied")
	require.NoError(t, change(30), "count 1 is used up")
	assert.Empty(t, reg.List())
	assert.Equal(t, int64(30), weights(t, r, zone)["eu-west-2"])
	calls := srv.Calls(control.CallFilter{Service: "route53"})
	require.Len(t, calls, 3, "the SDK did not retry")
	assert.Equal(t, "AccessDenied", calls[1].Result)

	// Route 53's REST-XML ErrorResponse.
	_, err = reg.Add(control.Fault{Target: "aws:route53:CreateHostedZone", Kind: control.KindDenied})
	require.NoError(t, err)
	status, body := rawSigned(t, http.MethodPost, c.endpoint+"/2013-04-01/hostedzone", "us-east-1", "route53", "text/xml", "<CreateHostedZoneRequest/>")
	assert.Equal(t, http.StatusForbidden, status)
	assert.Contains(t, body, `<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:sts::`)
	assert.Contains(t, body, "route53:CreateHostedZone")
	_, err = r.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: aws.String("new.example"), CallerReference: aws.String("x")})
	permanent(t, err, "AccessDenied")

	// CloudWatch answers AccessDenied too.
	_, err = reg.Add(control.Fault{Target: "aws:cloudwatch:mutating", Kind: control.KindDenied})
	require.NoError(t, err)
	cw := c.cw("eu-west-2")
	_, err = cw.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{})
	require.NoError(t, err)
	_, err = cw.SetAlarmState(ctx, &cloudwatch.SetAlarmStateInput{AlarmName: aws.String("shop-eu-west-2-5xx"), StateValue: cwtypes.StateValueOk, StateReason: aws.String("test")})
	permanent(t, err, "AccessDenied")
}

// TestMutatingTargetCoversTheMutatingOps keeps the name rule of aws:<service>:mutating in
// step with the operations the simulator serves and records as mutating.
func TestMutatingTargetCoversTheMutatingOps(t *testing.T) {
	check := func(service, op string, mutating bool) {
		assert.Equal(t, mutating, control.Matches("aws:"+service+":mutating", "aws:"+service+":"+op), "%s %s", service, op)
	}
	for name, op := range ec2Ops {
		check("ec2", name, op.mutating)
	}
	for name, op := range cwOps {
		check("cloudwatch", name, op.mutating)
	}
	routes := []struct{ method, path string }{
		{"POST", "hostedzone"}, {"GET", "hostedzone"}, {"GET", "hostedzonesbyname"},
		{"GET", "hostedzone/Z1"}, {"DELETE", "hostedzone/Z1"},
		{"GET", "hostedzone/Z1/rrset"}, {"POST", "hostedzone/Z1/rrset"},
		{"GET", "change/C1"},
		{"POST", "healthcheck"}, {"GET", "healthcheck"}, {"GET", "healthcheck/H1"}, {"DELETE", "healthcheck/H1"},
		{"GET", "healthcheck/H1/status"},
	}
	for _, rt := range routes {
		op, _, ok := route53Route(rt.method, "/2013-04-01/"+rt.path)
		require.True(t, ok, "%s %s", rt.method, rt.path)
		check("route53", op.name, op.mutating)
	}
}
