package testbroker

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// MaxSize is the largest instance. Ranks are created when first used, so
// an instance costs memory for the ranks a test touches, not for its size.
const MaxSize = 1 << 24

// Config configures an instance. The zero value is a one-rank instance.
type Config struct {
	// Size is the number of ranks, 1 to MaxSize. Default 1.
	Size int
	// Fanout is k of the k-ary tree: rank r's parent is (r-1)/k.
	// Default 2. A fanout of Size-1 or more gives a flat tree.
	Fanout int
	// Attrs are broker attributes set on every rank; "rank", "size" and
	// "tbon.fanout" are always set and cannot be overridden here.
	Attrs map[string]string
	// Config is the broker configuration as TOML, the same on every rank.
	// config.get returns its tables with keys in sorted order; use
	// ConfigJSON where a consumer depends on the order of keys.
	Config string
	// ConfigJSON, when set, is the configuration as a JSON object, returned
	// by config.get byte for byte, so key order is kept as flux-core's
	// jansson objects keep it. It takes precedence over Config.
	ConfigJSON string
	// Env is the broker environment (broker.getenv) on every rank.
	Env map[string]string
	// Owner is the instance owner's user id. Default os.Getuid().
	Owner *uint32
	// Seed seeds the RNG that drops messages on faulty links.
	Seed int64
}

// ConfigError is a TOML syntax error in Config.Config or Rank.SetConfig,
// located by line and column (1-based) so that a caller that read the
// text from a file can name the place: FILE:Line:Column.
type ConfigError struct {
	Line, Column int
	Err          error
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("config:%d:%d: %v", e.Line, e.Column, e.Err)
}

// Unwrap exposes the parser's error.
func (e *ConfigError) Unwrap() error { return e.Err }

func configFromTOML(text string) (json.RawMessage, error) {
	conf := map[string]any{}
	if err := toml.Unmarshal([]byte(text), &conf); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, col := de.Position()
			return nil, &ConfigError{Line: line, Column: col, Err: errors.New(strings.TrimPrefix(de.Error(), "toml: "))}
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	b, err := json.Marshal(conf)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return b, nil
}

func configFromJSON(text string) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &obj); err != nil {
		return nil, fmt.Errorf("config: not a JSON object: %w", err)
	}
	return json.RawMessage(text), nil
}
