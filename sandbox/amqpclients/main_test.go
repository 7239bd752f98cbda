package amqpclients

import (
	"os"
	"testing"

	"github.com/ferryhq/ferry/internal/rabbitpair"
)

// One RabbitMQ pair for the package (about 13s to start), stopped here.
func TestMain(m *testing.M) {
	code := m.Run()
	rabbitpair.StopShared()
	os.Exit(code)
}
