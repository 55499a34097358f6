package flub

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The boot handshake honours the joiner's HandshakeTimeout, not a fixed
// 30 s, and says so; a deadline on ctx bounds it as well.
func TestJoinHonoursHandshakeTimeout(t *testing.T) {
	leakcheck.Check(t)
	owner := mustKeyPair(t)
	uri := FormatBootURI(testutil.SilentListener(t), mustKey(t))
	// The context outlasts the handshake timeout by far: a timeout error
	// can only come from the handshake.
	_, err := Join(testutil.Context(t), JoinConfig{BootURI: uri, Owner: owner, HandshakeTimeout: 300 * time.Millisecond})
	require.ErrorIs(t, err, curve.ErrHandshakeTimeout)
	assert.ErrorContains(t, err, "handshake timed out after 300ms")
	_, err = Join(testutil.ContextTimeout(t, 300*time.Millisecond), JoinConfig{BootURI: uri, Owner: owner})
	require.ErrorIs(t, err, context.DeadlineExceeded, "join under a 300ms deadline")
}

// Key mismatches say which key is wrong, in one line without zmq4's
// layers: a boot URI holding another server's key, an owner certificate
// the instance does not know.
func TestJoinKeyMismatchesSaySo(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 3})
	ep, _, err := ParseBootURI(in.root.BootURI())
	require.NoError(t, err)
	hostport := strings.TrimPrefix(ep, "tcp://")
	ctx := testutil.Context(t)

	cfg := in.joinConfig("n1")
	cfg.BootURI = FormatBootURI(hostport, mustKey(t))
	_, err = Join(ctx, cfg)
	require.ErrorIs(t, err, curve.ErrServerKeyMismatch)
	assert.True(t, strings.HasPrefix(err.Error(), "boot-flub: boot server "+hostport+": handshake failed: server key mismatch: "), err.Error())
	assert.NotContains(t, err.Error(), "zmq4")

	cfg = in.joinConfig("n1")
	cfg.Owner = mustKeyPair(t)
	_, err = Join(ctx, cfg)
	require.ErrorIs(t, err, curve.ErrClientKeyNotAuthorized)
	assert.EqualError(t, err, "boot-flub: boot server "+hostport+": client key not authorized (the server answered ERROR 400)")
}
