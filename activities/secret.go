package activities

import (
	"fmt"
	"os"
	"strings"
)

// Secret is a secret reference resolved on the worker: an environment variable of the
// worker process or a file it can read. Only the reference travels through workflow
// history; the value never leaves the worker.
type Secret struct {
	Env  string
	File string
}

// Set reports whether the reference names anything.
func (s Secret) Set() bool { return s.Env != "" || s.File != "" }

// Resolve reads the secret; what names it in errors ("password", "bearer token").
func (s Secret) Resolve(what string) (string, error) {
	switch {
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok || v == "" {
			return "", fmt.Errorf("%s: environment variable %s is not set on this worker; set it or point %s.file at a file", what, s.Env, what)
		}
		return v, nil
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("%s: read %s on this worker: %v", what, s.File, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("%s: file %s is empty", what, s.File)
		}
		return v, nil
	}
	return "", fmt.Errorf("%s: no reference (env or file)", what)
}
