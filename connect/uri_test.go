package connect

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseURI(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want target
		err  string
	}{
		{in: "local:///run/flux/local", want: target{scheme: "local", path: "/run/flux/local"}},
		{in: "  local:///tmp/x  ", want: target{scheme: "local", path: "/tmp/x"}},
		{in: "/tmp/flux-abc/local-0", want: target{scheme: "local", path: "/tmp/flux-abc/local-0"}},
		{in: "sock", want: target{scheme: "local", path: "sock"}},
		{in: "ssh://node1/tmp/flux-abc/local", want: target{scheme: "ssh", host: "node1", path: "/tmp/flux-abc/local"}},
		{in: "ssh://alice@node1:2222/tmp/s", want: target{scheme: "ssh", host: "node1", user: "alice", port: 2222, path: "/tmp/s"}},
		{in: ".", want: target{relative: true}},
		{in: "..", want: target{relative: true, ancestor: 1}},
		{in: "../..", want: target{relative: true, ancestor: 2}},
		{in: "./../", want: target{relative: true, ancestor: 1}},
		{in: "/", want: target{relative: true, ancestor: -1}},
		{in: "", err: "empty URI"},
		{in: "local://", err: "no socket path"},
		{in: "tcp://host:1", err: `unsupported scheme "tcp"`},
		{in: "ssh://node1", err: "no socket path"},
		{in: "ssh:///tmp/x", err: "no host"},
		{in: "ssh://node1:99999/tmp/x", err: "bad port"},
		{in: "ssh://a:pw@node1/tmp/x", err: "passwords are not allowed"},
		{in: "ssh://node1/tmp/x?y=1", err: "query and fragment"},
	} {
		got, err := parseURI(tc.in)
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
}

func TestTargetString(t *testing.T) {
	for _, s := range []string{"local:///tmp/x", "ssh://node1/tmp/x", "ssh://bob@node1:22/tmp/x"} {
		tg, err := parseURI(s)
		require.NoError(t, err)
		assert.Equal(t, s, tg.String())
	}
}

// The ssh command line is flux-core's: port, user@host, then env with a PATH
// that starts with the instance's rundir/bin and the local flux's directory,
// LD_LIBRARY_PATH forwarded, and "flux relay PATH".
func TestSSHCommand(t *testing.T) {
	dir := t.TempDir()
	flux := filepath.Join(dir, "flux")
	require.NoError(t, os.WriteFile(flux, []byte("#!/bin/sh\n"), 0o755))
	tg := target{scheme: "ssh", host: "n1", user: "bob", port: 2200, path: "/tmp/flux-x/local-1"}
	got := sshCommand(tg, sshOptions{ssh: "rsh", ldPath: "/opt/lib", pathEnv: "/nope:" + dir})
	assert.Equal(t, []string{"rsh", "-p", "2200", "bob@n1", "env",
		"PATH=/tmp/flux-x/bin:" + dir + ":/bin:/usr/bin", "LD_LIBRARY_PATH=/opt/lib",
		"flux", "relay", "/tmp/flux-x/local-1"}, got)

	got = sshCommand(target{scheme: "ssh", host: "n1", path: "/s"}, sshOptions{ssh: "ssh", rcmd: "/opt/flux/bin/flux"})
	assert.Equal(t, []string{"ssh", "n1", "/opt/flux/bin/flux", "relay", "/s"}, got)
}
