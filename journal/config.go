package journal

import (
	"errors"
	"fmt"
	"sort"

	"github.com/fluxkit/fluxkit/internal/jsonscan"
)

// TopicConfigReload is the request the broker sends a module when the
// instance's configuration is reloaded; its payload is the new
// configuration object.
const TopicConfigReload = "job-list.config-reload"

// Config is what job-list reads from the instance's configuration.
type Config struct {
	// Queues are the names of the [queues] tables.
	Queues []string
	// MaxComparisons is [job-list] max_comparisons (0: no cap); default
	// 1,000,000.
	MaxComparisons uint64
	// PrivateMode is [access] private-mode.
	PrivateMode bool
}

// ParseConfig reads job-list's settings from a configuration object (the
// JSON form of the instance's TOML configuration, as config.get and
// config-reload carry it), with flux-core's checks.
func ParseConfig(b []byte) (Config, error) {
	c := Config{MaxComparisons: DefaultMaxComparisons}
	b = jsonscan.Trim(b)
	if len(b) == 0 {
		return c, nil
	}
	if err := jsonscan.Check(b); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	if jsonscan.KindOf(b) != jsonscan.Object {
		return c, errors.New("config: not a JSON object")
	}
	var queues, jl, access []byte
	_ = jsonscan.Members(b, func(k string, v []byte) error {
		switch k {
		case "queues":
			queues = v
		case "job-list":
			jl = v
		case "access":
			access = v
		}
		return nil
	})
	if jsonscan.KindOf(queues) == jsonscan.Object {
		_ = jsonscan.Members(queues, func(k string, _ []byte) error {
			c.Queues = append(c.Queues, k)
			return nil
		})
		sort.Strings(c.Queues)
	}
	if jl != nil {
		if jsonscan.KindOf(jl) != jsonscan.Object {
			return c, errors.New("error reading config for job-list: job-list is not a table")
		}
		if v, _ := jsonscan.Member(jl, "max_comparisons"); v != nil {
			n, err := jsonscan.Int(v)
			if err != nil {
				return c, errors.New("error reading config for job-list: max_comparisons is not an integer")
			}
			if n < 0 {
				return c, errors.New("job-list.max_comparisons must be >= 0")
			}
			c.MaxComparisons = uint64(n)
		}
	}
	if access != nil {
		if jsonscan.KindOf(access) != jsonscan.Object {
			return c, errors.New("error reading [access] config: access is not a table")
		}
		if v, _ := jsonscan.Member(access, "private-mode"); v != nil {
			on, err := jsonscan.Bool(v)
			if err != nil {
				return c, errors.New("error reading [access] config: private-mode is not a boolean")
			}
			c.PrivateMode = on
		}
	}
	return c, nil
}

// reconfigure applies a reloaded configuration: queues get (empty)
// statistics if they have none yet, and the cap and private mode change
// for the requests that follow.
func (x *Index) reconfigure(c Config) {
	for _, q := range c.Queues {
		x.queueCounts(q)
	}
	n := c.MaxComparisons
	x.cfg.MaxComparisons = &n
	x.cfg.PrivateMode = c.PrivateMode
	x.changed()
}
