// Command ferry runs and steers cloud migrations as durable Temporal workflows.
// See `ferry --help`; the commands live in internal/cli.
package main

import (
	"os"

	"github.com/ferryhq/ferry/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
