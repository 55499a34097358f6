package connect

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ErrNoURI is returned by [Open] when it is given no URI and FLUX_URI is
// not set: the program is not running inside a Flux instance.
var ErrNoURI = errors.New("FLUX_URI is not set: run inside a Flux instance (flux start, or a job's environment) or pass a URI such as local:///run/flux/local")

// target is a parsed broker URI.
type target struct {
	scheme string // "local" or "ssh"
	path   string // socket path on the broker's host
	host   string // ssh only
	user   string // ssh only, may be empty
	port   int    // ssh only, 0 for the default
	// ancestor is set for flux-core's path-like URIs: "." is the enclosing
	// instance, ".." its parent, "../.." and so on, "/" the root instance.
	// -1 means the root.
	ancestor int
	relative bool
}

func (t target) String() string {
	switch t.scheme {
	case "ssh":
		var b strings.Builder
		b.WriteString("ssh://")
		if t.user != "" {
			b.WriteString(t.user + "@")
		}
		b.WriteString(t.host)
		if t.port != 0 {
			b.WriteString(":" + strconv.Itoa(t.port))
		}
		b.WriteString(t.path)
		return b.String()
	default:
		return "local://" + t.path
	}
}

// parseURI parses a broker URI as flux_open() accepts it:
//
//   - local://PATH, the broker's local connector socket;
//   - ssh://[user@]host[:port]/PATH, the same socket reached through
//     "flux relay" on host;
//   - ".", "..", "../..", ... and "/": the enclosing instance, its parent,
//     and so on up to the root, resolved through the parent-uri attribute;
//   - any other bare path, taken as a socket path (flux-core refuses these;
//     fluxkit accepts them because a socket path is what users have at hand).
func parseURI(uri string) (target, error) {
	uri = strings.TrimSpace(uri)
	if uri == "" {
		return target{}, fmt.Errorf("empty URI")
	}
	if n, ok := ancestorLevels(uri); ok {
		return target{ancestor: n, relative: true}, nil
	}
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return target{scheme: "local", path: uri}, nil
	}
	rest = strings.TrimSpace(rest)
	switch scheme {
	case "local":
		if rest == "" {
			return target{}, fmt.Errorf("URI %q: no socket path", uri)
		}
		return target{scheme: "local", path: rest}, nil
	case "ssh":
		return parseSSH(uri)
	}
	return target{}, fmt.Errorf("URI %q: unsupported scheme %q (fluxkit connects to local:// and ssh://)", uri, scheme)
}

// ancestorLevels recognizes flux-core's path-like URIs.
func ancestorLevels(uri string) (int, bool) {
	if uri == "/" {
		return -1, true
	}
	if uri[0] != '.' {
		return 0, false
	}
	n := 0
	for _, elem := range strings.Split(strings.TrimSuffix(uri, "/"), "/") {
		switch elem {
		case "..":
			n++
		case ".":
		default:
			return 0, false
		}
	}
	return n, true
}

func parseSSH(uri string) (target, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return target{}, fmt.Errorf("URI %q: %w", uri, err)
	}
	if u.Host == "" || u.Hostname() == "" {
		return target{}, fmt.Errorf("URI %q: no host", uri)
	}
	if u.Path == "" || u.Path == "/" {
		return target{}, fmt.Errorf("URI %q: no socket path after the host", uri)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return target{}, fmt.Errorf("URI %q: query and fragment are not allowed", uri)
	}
	t := target{scheme: "ssh", host: u.Hostname(), path: u.Path}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return target{}, fmt.Errorf("URI %q: passwords are not allowed; use ssh keys", uri)
		}
		t.user = u.User.Username()
	}
	if p := u.Port(); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return target{}, fmt.Errorf("URI %q: bad port %q", uri, p)
		}
		t.port = port
	}
	return t, nil
}
