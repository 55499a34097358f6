package flub

import (
	"context"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Validate refuses a field out of range with an EINVAL naming the field,
// and leaves the config as it found it.
func TestValidateNamesTheFieldAtFault(t *testing.T) {
	owner := mustKeyPair(t)
	boot := FormatBootURI("127.0.0.1:1", owner.Public)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Owner: owner.Public}, ""},
		{Config{Owner: owner.Public, Size: MaxSize + 1}, "Config.Size: 2147483649 exceeds the maximum instance size 2147483648"},
		{Config{Owner: owner.Public, Topo: "ring"}, "Config.Topo: unknown topology scheme 'ring'"},
		{Config{}, "Config.Owner: the owner's public key is required"},
		{Config{Owner: owner.Public, InstanceConfig: []byte("[1]")}, "Config.InstanceConfig: not a JSON object"},
		{Config{Owner: owner.Public, Lease: -time.Second}, "Config.Lease: negative duration -1s"},
		{Config{Owner: owner.Public, TorpidMax: -time.Second}, "Config.TorpidMax: negative duration -1s"},
		{Config{Owner: owner.Public, HandshakeTimeout: -time.Second}, "Config.HandshakeTimeout: negative duration -1s"},
		{Config{Owner: owner.Public, TCPUserTimeout: -time.Second}, "Config.TCPUserTimeout: negative duration -1s"},
		{Config{Owner: owner.Public, ModuleTimeout: -time.Second}, "Config.ModuleTimeout: negative duration -1s"},
		{Config{Owner: owner.Public, Heartbeat: 2 * time.Second, TorpidMax: time.Second}, "Config.Heartbeat (2s) must be less than TorpidMax (1s)"},
		{Config{Owner: owner.Public, Heartbeat: time.Minute}, "Config.Heartbeat (1m0s) must be less than TorpidMax (30s)"},
		{Config{Owner: owner.Public, Modules: map[string]ModuleFunc{"x": nil}}, `Config.Modules: module "x" needs a name and a function`},
	} {
		before := tc.cfg
		err := tc.cfg.Validate()
		if tc.want == "" {
			assert.NoError(t, err)
		} else {
			requireError(t, err, fluxkit.EINVAL, tc.want)
		}
		assert.Equal(t, before, tc.cfg, "Validate changed the config")
	}
	for _, tc := range []struct {
		cfg  JoinConfig
		want string
	}{
		{JoinConfig{BootURI: boot, Owner: owner}, ""},
		{JoinConfig{BootURI: boot, Owner: owner, ReconnectTimeout: new(time.Duration(0))}, ""},
		{JoinConfig{BootURI: "tcp://127.0.0.1:1", Owner: owner}, "JoinConfig.BootURI: boot uri"},
		{JoinConfig{BootURI: boot}, "JoinConfig.Owner: the owner key pair is required"},
		{JoinConfig{BootURI: boot, Owner: owner, Topo: "kary:x"}, "JoinConfig.Topo: kary k value must be an integer >= 0"},
		{JoinConfig{BootURI: boot, Owner: owner, ParentTimeout: -1}, "JoinConfig.ParentTimeout: negative duration"},
		{JoinConfig{BootURI: boot, Owner: owner, ReconnectTimeout: new(-time.Second)}, "JoinConfig.ReconnectTimeout: negative duration -1s"},
		{JoinConfig{BootURI: boot, Owner: owner, HandshakeTimeout: -time.Second}, "JoinConfig.HandshakeTimeout: negative duration -1s"},
		{JoinConfig{BootURI: boot, Owner: owner, TCPUserTimeout: -1}, "JoinConfig.TCPUserTimeout: negative duration"},
		{JoinConfig{BootURI: boot, Owner: owner, ModuleTimeout: -1}, "JoinConfig.ModuleTimeout: negative duration"},
		{JoinConfig{BootURI: boot, Owner: owner, Heartbeat: time.Minute}, "JoinConfig.Heartbeat (1m0s) must be less than TorpidMax (30s)"},
	} {
		before := tc.cfg
		err := tc.cfg.Validate()
		if tc.want == "" {
			assert.NoError(t, err)
		} else {
			requireError(t, err, fluxkit.EINVAL, tc.want)
		}
		assert.Equal(t, before, tc.cfg, "Validate changed the config")
	}
	for _, tc := range []struct {
		cfg  ClientConfig
		want string
	}{
		{ClientConfig{BootURI: boot, Keys: owner}, ""},
		{ClientConfig{BootURI: "flub://127.0.0.1/x", Keys: owner}, "ClientConfig.BootURI: boot uri"},
		{ClientConfig{BootURI: boot}, "ClientConfig.Keys: a key pair is required"},
		{ClientConfig{BootURI: boot, Keys: owner, HandshakeTimeout: -time.Second}, "ClientConfig.HandshakeTimeout: negative duration -1s"},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" {
			assert.NoError(t, err)
		} else {
			requireError(t, err, fluxkit.EINVAL, tc.want)
		}
	}
}

// Every constructor refuses what Validate refuses, before any I/O.
func TestConstructorsValidate(t *testing.T) {
	ctx := context.Background()
	_, err := Start(ctx, Config{})
	requireError(t, err, fluxkit.EINVAL, "Config.Owner")
	_, err = Join(ctx, JoinConfig{BootURI: "nowhere"})
	requireError(t, err, fluxkit.EINVAL, "boot-flub: JoinConfig.BootURI")
	_, err = DialBoot(ctx, ClientConfig{BootURI: FormatBootURI("127.0.0.1:1", mustKey(t))})
	requireError(t, err, fluxkit.EINVAL, "ClientConfig.Keys")
}

// OwnerUserid distinguishes "the default" (nil: this process's userid)
// from userid 0, root, which owns a system instance.
func TestOwnerUseridZeroIsRoot(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{OwnerUserid: new(uint32(0))})
	v, _ := in.root.Attr("security.owner")
	assert.Equal(t, "0", v)
	assert.Equal(t, uint32(0), in.root.Cred().Userid)
	require.True(t, in.root.Cred().IsOwner())
}
