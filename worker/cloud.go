package worker

import (
	"context"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/route53"
)

// CloudOptions says where the activities' cloud calls go. With AWSEndpoint empty they go to
// AWS with the default credential chain; with it set (the sandbox) only the endpoint
// differs, and the same activities run unchanged.
type CloudOptions struct {
	// AWSEndpoint overrides every AWS service endpoint, e.g. http://127.0.0.1:4566.
	AWSEndpoint string
	// AWSRegion is the default region for regional calls. Default us-east-1.
	AWSRegion string
}

type cloudClients struct {
	http       *http.Client
	awsConfig  aws.Config
	route53    *route53.Client
	ec2        func(region string) *ec2.Client
	cloudwatch func(region string) *cloudwatch.Client
}

func newCloudClients(ctx context.Context, o CloudOptions) (*cloudClients, error) {
	if o.AWSRegion == "" {
		o.AWSRegion = "us-east-1"
	}
	// Activities never use http.DefaultClient: a timeout bounds every call even where a
	// context has none.
	hc := &http.Client{Timeout: 30 * time.Second}
	loadOpts := []func(*config.LoadOptions) error{
		config.WithRegion(o.AWSRegion),
		// The SDK's buildable client keeps AWS_CA_BUNDLE working, which a plain
		// *http.Client would refuse.
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(30 * time.Second)),
	}
	if o.AWSEndpoint != "" {
		// The sandbox checks no signatures; static credentials keep a developer's real AWS
		// credentials from ever being sent to it.
		loadOpts = append(loadOpts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("sandbox", "sandbox", "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, err
	}
	endpoint := func() *string {
		if o.AWSEndpoint == "" {
			return nil
		}
		return aws.String(o.AWSEndpoint)
	}
	return &cloudClients{
		http:      hc,
		awsConfig: cfg,
		route53: route53.NewFromConfig(cfg, func(opt *route53.Options) {
			opt.BaseEndpoint = endpoint()
			opt.Region = "us-east-1" // Route 53 is global; its signing region is us-east-1.
		}),
		ec2: func(region string) *ec2.Client {
			return ec2.NewFromConfig(cfg, func(opt *ec2.Options) { opt.BaseEndpoint = endpoint(); opt.Region = region })
		},
		cloudwatch: func(region string) *cloudwatch.Client {
			return cloudwatch.NewFromConfig(cfg, func(opt *cloudwatch.Options) { opt.BaseEndpoint = endpoint(); opt.Region = region })
		},
	}, nil
}
