package connect

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/fluxkit/fluxkit"
)

// Config configures a connection. The zero value of every field is its
// documented default, so the zero Config connects as flux-core's
// flux_open(NULL) would.
type Config struct {
	// URI is the broker to connect to (see [Open]). Empty means $FLUX_URI.
	URI string

	// Logger receives the connection's diagnostics: messages it had to
	// drop, unknown message types. Default: discard.
	Logger *slog.Logger

	// Getenv reads the environment: FLUX_URI, FLUX_SSH, FLUX_SSH_RCMD,
	// LD_LIBRARY_PATH, PATH, FLUX_LOCAL_CONNECTOR_RETRY_COUNT,
	// FLUX_HANDLE_USERID and FLUX_HANDLE_ROLEMASK. Default: os.Getenv.
	Getenv func(string) string

	// Userid and Rolemask, when set, are stamped on every message sent, as
	// flux-core's FLUX_HANDLE_USERID/FLUX_HANDLE_ROLEMASK testing options
	// do: the broker honours them only from the instance owner, so that the
	// owner can act as a guest in tests. Userid 0 is root's, so nil means
	// unset (new(uint32(1001)) sets one); Rolemask's zero, RoleNone, is
	// flux-core's "unset". The environment variables apply to what is
	// unset here.
	Userid   *uint32
	Rolemask fluxkit.Role

	// MaxPending bounds the bytes queued for the broker. Request and
	// Publish wait (bounded by their contexts) while more is queued;
	// responses are always queued. Default 64 MiB; must not be negative.
	MaxPending int
}

// DefaultMaxPending is the default for Config.MaxPending.
const DefaultMaxPending = 64 << 20

// Validate reports the first field that is out of range, naming it. It
// does not change c; New calls it.
func (c *Config) Validate() error {
	if c.MaxPending < 0 {
		return fmt.Errorf("connect: MaxPending %d is negative", c.MaxPending)
	}
	if c.URI != "" {
		if _, err := parseURI(c.URI); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	return c
}

// testingCred is the credential to stamp on messages, or nil, as
// flux-core's local connector decides: a userid other than
// FLUX_USERID_UNKNOWN or a rolemask other than FLUX_ROLE_NONE.
func testingCred(cfg Config) (*fluxkit.Cred, error) {
	c := fluxkit.Cred{Userid: fluxkit.UseridUnknown, Roles: cfg.Rolemask}
	if cfg.Userid != nil {
		c.Userid = *cfg.Userid
	} else if s := cfg.Getenv("FLUX_HANDLE_USERID"); s != "" {
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("connect: FLUX_HANDLE_USERID=%q is not a userid", s)
		}
		c.Userid = uint32(v)
	}
	if c.Roles == fluxkit.RoleNone {
		if s := cfg.Getenv("FLUX_HANDLE_ROLEMASK"); s != "" {
			v, err := strconv.ParseUint(s, 0, 32)
			if err != nil {
				return nil, fmt.Errorf("connect: FLUX_HANDLE_ROLEMASK=%q is not a role mask", s)
			}
			c.Roles = fluxkit.Role(v)
		}
	}
	if c.Userid == fluxkit.UseridUnknown && c.Roles == fluxkit.RoleNone {
		return nil, nil
	}
	return &c, nil
}
