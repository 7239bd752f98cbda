package e2e

import (
	"os"
	"testing"

	"github.com/ferryhq/ferry/internal/rabbitpair"
)

// The broker move's tests share one RabbitMQ pair (about 13s to start), stopped here;
// packages' other tests never start it.
func TestMain(m *testing.M) {
	code := m.Run()
	rabbitpair.StopShared()
	os.Exit(code)
}
