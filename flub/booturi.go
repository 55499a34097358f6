package flub

import (
	"net"
	"strings"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
)

// bootScheme is the scheme of a boot-server URI.
const bootScheme = "flub://"

// FormatBootURI returns the boot-server URI "flub://host:port/<Z85 key>":
// where to connect and the CURVE key the server must prove. The key comes
// last because Z85 text may itself contain '/'.
func FormatBootURI(hostport string, key curve.Key) string {
	return bootScheme + hostport + "/" + key.String()
}

// ParseBootURI splits a boot-server URI into a "tcp://host:port" endpoint
// and the server's public key.
func ParseBootURI(uri string) (endpoint string, key curve.Key, err error) {
	rest, ok := strings.CutPrefix(uri, bootScheme)
	if !ok {
		return "", key, fluxkit.Errorf(fluxkit.EINVAL, "boot uri %q: scheme must be %s", uri, bootScheme)
	}
	hostport, z85, ok := strings.Cut(rest, "/")
	if !ok {
		return "", key, fluxkit.Errorf(fluxkit.EINVAL, "boot uri %q: missing /<server public key>", uri)
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return "", key, fluxkit.Errorf(fluxkit.EINVAL, "boot uri %q: address %q: %v", uri, hostport, err)
	}
	key, err = curve.ParseKey(z85)
	if err != nil {
		return "", key, fluxkit.Errorf(fluxkit.EINVAL, "boot uri %q: server key: %v", uri, err)
	}
	return "tcp://" + hostport, key, nil
}
