package activities

import (
	"os"
	"testing"

	"github.com/ferryhq/ferry/internal/rabbitpair"
)

// The RabbitMQ pair takes about 13s to start: once per package, stopped here.
func TestMain(m *testing.M) {
	code := m.Run()
	rabbitpair.StopShared()
	os.Exit(code)
}
