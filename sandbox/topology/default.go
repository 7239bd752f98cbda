package topology

import (
	_ "embed"
	"fmt"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the built-in topology file, e.g. for `ferry sandbox topology`.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Default returns the built-in marketplace topology (a fresh copy each call).
func Default() *Topology {
	t, err := Parse(defaultYAML)
	if err != nil {
		// The embedded file is covered by tests; failing here is a build defect.
		panic(fmt.Sprintf("built-in topology: %v", err))
	}
	return t
}
