package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"sigs.k8s.io/yaml"

	"github.com/ferryhq/ferry/server"
)

// The CLI's config file holds named contexts: where an API is and how to authenticate to
// it, so `ferry get` works from any directory (before contexts, the token was found through
// ./.ferry, relative to where the command ran). Precedence, highest first: a flag, its
// FERRY_* variable, the current context, the built-in default.

// ferryConfig is $XDG_CONFIG_HOME/ferry/config.yaml.
type ferryConfig struct {
	CurrentContext string         `json:"current-context,omitempty"`
	Contexts       []ferryContext `json:"contexts,omitempty"`
}

// ferryContext is one API and its credentials. TokenFile holds either a bare token or the
// tokens.json `ferry dev` writes (a token per profile, picked with --as); a file keeps the
// secret out of the config, which is often shared or printed.
type ferryContext struct {
	Name      string `json:"name"`
	API       string `json:"api,omitempty"`
	Token     string `json:"token,omitempty"`
	TokenFile string `json:"token-file,omitempty"`
	CA        string `json:"ca,omitempty"`
	Cert      string `json:"cert,omitempty"`
	CertKey   string `json:"cert-key,omitempty"`
}

// configPath is FERRY_CONFIG, else $XDG_CONFIG_HOME/ferry/config.yaml, else the same under
// ~/.config (the XDG default).
func configPath() (string, error) {
	if p := os.Getenv("FERRY_CONFIG"); p != "" {
		return p, nil
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the config file: set XDG_CONFIG_HOME or FERRY_CONFIG: %w", err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "ferry", "config.yaml"), nil
}

// loadConfig reads the config file; a missing file is an empty config.
func loadConfig() (*ferryConfig, string, error) {
	path, err := configPath()
	if err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &ferryConfig{}, path, nil
	}
	if err != nil {
		return nil, path, fmt.Errorf("read config: %w", err)
	}
	var c ferryConfig
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, path, fmt.Errorf("parse config %s: %w", path, err)
	}
	return &c, path, nil
}

// save writes the file atomically (a rename), readable by its owner only: a context may
// hold a token.
func (c *ferryConfig) save(path string) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return os.Rename(tmp, path)
}

func (c *ferryConfig) find(name string) (*ferryContext, bool) {
	i := slices.IndexFunc(c.Contexts, func(x ferryContext) bool { return x.Name == name })
	if i < 0 {
		return nil, false
	}
	return &c.Contexts[i], true
}

// upsert replaces the context of the same name, or adds it.
func (c *ferryConfig) upsert(x ferryContext) {
	if old, ok := c.find(x.Name); ok {
		*old = x
		return
	}
	c.Contexts = append(c.Contexts, x)
}

// current is the context to use: name if given (--context / FERRY_CONTEXT), else the
// current one; nil when there is none and none was asked for.
func (c *ferryConfig) current(name string) (*ferryContext, error) {
	if name == "" {
		name = c.CurrentContext
		if name == "" {
			return nil, nil
		}
	}
	x, ok := c.find(name)
	if !ok {
		return nil, fmt.Errorf("no context %q in the config file: see `ferry config get-contexts`", name)
	}
	return x, nil
}

// writeDevContext records `ferry dev`'s API and token file as the `dev` context, and makes
// it current when no other context is: a developer's own current context is theirs.
func writeDevContext(apiURL, dataDir string) (string, error) {
	cfg, path, err := loadConfig()
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return "", err
	}
	cfg.upsert(ferryContext{Name: "dev", API: apiURL, TokenFile: server.DevTokenFile(abs)})
	if cfg.CurrentContext == "" {
		cfg.CurrentContext = "dev"
	}
	return path, cfg.save(path)
}

// recordDevContext is `ferry dev`'s one call into contexts. A config it cannot write is
// worth a warning, not a failed start: FERRY_* variables still reach the stack.
func recordDevContext(g *globals, apiURL, dataDir string) {
	path, err := writeDevContext(apiURL, dataDir)
	if err != nil {
		g.logger().Warn("could not write the dev context; set FERRY_API and FERRY_DATA_DIR instead", "error", err)
		return
	}
	fmt.Fprintf(g.stderr, "context \"dev\" (%s) points at this stack: ferry commands work from any directory\n", path)
}
