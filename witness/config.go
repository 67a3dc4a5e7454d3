package witness

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	"golang.org/x/mod/sumdb/note"
)

// Config is the witness configuration file (YAML). Example:
//
//	name: witness.example.com/w1
//	logs:
//	  - origin: audit.example.com/log
//	    key: audit.example.com/log+1a2b3c4d+AW...
type Config struct {
	// Name is the witness's name: the key name in its cosignature lines
	// and verifier key. URL-like (e.g. example.com/witness), no spaces or
	// '+'. Required. It must match the name of an existing key.
	Name string `yaml:"name"`
	// Logs are the logs this witness cosigns for. At least one is required.
	// Removing a log only stops cosigning for it: its latest cosigned
	// checkpoint stays in the database, so adding it back later resumes
	// from there and cannot sign a split view.
	Logs []LogConfig `yaml:"logs"`
}

// LogConfig is one log the witness cosigns for.
type LogConfig struct {
	// Origin is the log's checkpoint origin line. Required, unique.
	Origin string `yaml:"origin"`
	// Key is the log's note verifier key (name+hash+base64, Ed25519).
	// Checkpoints must carry a valid signature by this key. Required.
	Key string `yaml:"key"`
}

// ParseConfig parses and validates a YAML configuration. Unknown fields are
// rejected so that a typo cannot silently drop a setting.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("parsing witness config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks that c is usable: a valid name, at least one log, unique
// non-empty origins and parseable log keys.
func (c *Config) Validate() error {
	if !validName(c.Name) {
		return fmt.Errorf("witness config: invalid name %q (want a non-empty URL-like name without spaces or '+')", c.Name)
	}
	if len(c.Logs) == 0 {
		return errors.New("witness config: no logs configured")
	}
	seen := make(map[string]bool)
	for i, l := range c.Logs {
		if l.Origin == "" || strings.Contains(l.Origin, "\n") {
			return fmt.Errorf("witness config: logs[%d]: invalid origin %q", i, l.Origin)
		}
		if seen[l.Origin] {
			return fmt.Errorf("witness config: logs[%d]: duplicate origin %q", i, l.Origin)
		}
		seen[l.Origin] = true
		if _, err := note.NewVerifier(l.Key); err != nil {
			return fmt.Errorf("witness config: log %q: key %q: %w", l.Origin, l.Key, err)
		}
	}
	return nil
}

// validName reports whether name can be a note key name.
func validName(name string) bool {
	return name != "" && utf8.ValidString(name) &&
		strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}
