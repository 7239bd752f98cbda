package rabbitpair

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// A RabbitMQ node takes about 13s to start here, so a package starts its pair once, on
// the first test that asks, and its TestMain stops it (StopShared after m.Run).
var rabbit struct {
	once sync.Once
	pair *Pair
	err  error
	took time.Duration
}

// Shared returns the package's two real RabbitMQ nodes (blue and green, see
// Start), starting them on first use with a 1s statistics interval. Tests
// share them: each declares its own queues and names. Without RabbitMQ the test is skipped
// on a developer's machine and fails in CI (CI=true), where a skip would pass for the
// wrong reason. The package's TestMain must call StopShared.
func Shared(t testing.TB) *Pair {
	t.Helper()
	if _, _, _, err := Find(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skipf("%v (in CI this fails)", err)
	}
	rabbit.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		began := time.Now()
		rabbit.pair, rabbit.err = Start(ctx, Options{StatsInterval: time.Second})
		rabbit.took = time.Since(began)
	})
	if rabbit.err != nil {
		t.Fatalf("start rabbitmq pair: %v", rabbit.err)
	}
	t.Logf("rabbitmq pair: blue %s (mgmt %s), green %s (mgmt %s); started in %s", rabbit.pair.Blue.AMQPAddr(),
		rabbit.pair.Blue.MgmtURL(), rabbit.pair.Green.AMQPAddr(), rabbit.pair.Green.MgmtURL(), rabbit.took.Round(100*time.Millisecond))
	return rabbit.pair
}

// StopShared stops the package's pair if a test started it; call it from TestMain
// after m.Run (t.Cleanup would stop it after the first test).
func StopShared() {
	if rabbit.pair != nil {
		rabbit.pair.Stop()
	}
}
