package awssim

import (
	"net/http"
	"sync"
	"time"
)

// bucket is a token bucket refilled continuously, as AWS describes its EC2 API
// throttling: a burst capacity and a steady refill rate.
type bucket struct {
	tokens float64
	last   time.Time
	size   float64
	refill float64 // tokens per second
}

func (b *bucket) take(now time.Time) bool {
	b.tokens = min(b.size, b.tokens+now.Sub(b.last).Seconds()*b.refill)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

type limiter struct {
	mu      sync.Mutex
	now     func() time.Time
	buckets map[string]*bucket
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, buckets: map[string]*bucket{}}
}

// EC2 figures from the EC2 API throttling documentation (per account, per region).
var bucketSizes = map[string][2]float64{
	"ec2/copy":     {100, 1},
	"ec2/mutate":   {50, 5},
	"ec2/describe": {100, 20},
	"route53":      {10, 10}, // Route 53: about ten requests per second per account
	"cloudwatch":   {50, 50},
}

func (l *limiter) allow(service, region, op string, mutating bool) *apiError {
	class := service
	key := service
	if service == "ec2" {
		switch {
		case op == "CopyImage":
			class = "ec2/copy"
		case mutating:
			class = "ec2/mutate"
		default:
			class = "ec2/describe"
		}
		key = class + "/" + region
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	now := l.now()
	if b == nil {
		sz := bucketSizes[class]
		b = &bucket{tokens: sz[0], last: now, size: sz[0], refill: sz[1]}
		l.buckets[key] = b
	}
	if b.take(now) {
		return nil
	}
	return throttleError(service)
}

func errCopyLimit(msg string) *apiError {
	return &apiError{http.StatusBadRequest, "ResourceLimitExceeded", msg}
}
