package cli

import (
	"context"
	"io"
	"log/slog"
)

// devSandbox is the sandbox as `ferry dev` runs it.
type devSandbox struct {
	url      string
	stop     func()
	describe func(w io.Writer)
}

func startDevSandbox(ctx context.Context, log *slog.Logger, o devOptions) (*devSandbox, error) {
	return nil, nil
}
