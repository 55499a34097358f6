package flub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
)

// This file is how a child survives losing its parent. zmq4 does not
// reconnect, so the broker does: first to the same parent, with backoff,
// for JoinConfig.ReconnectTimeout; once the parent is gone for good (its
// port refuses connections, it no longer holds its key, or the time is up)
// through the boot server, reclaiming its own rank, which rank 0 keeps for
// it (orphaned) for the instance's lease. The broker's rank, children and
// clients stay as they are throughout; requests for the parent's side of
// the tree get EHOSTUNREACH meanwhile.

// parentLost starts the recovery of the parent connection; loop only.
func (b *Broker) parentLost(why string) {
	if b.up == nil || b.restoring {
		return
	}
	uri, key, keys := b.up.parentURI, b.up.parentKey, b.up.keys
	b.log.Error(fmt.Sprintf("lost connection to parent rank %d: %s", b.Parent(), why))
	b.detach()
	if !b.joined {
		err := fmt.Errorf("%w: before hello completed (%s)", ErrParentLost, why)
		select {
		case b.helloDone <- err:
		default:
		}
		b.fail(err)
		return
	}
	b.restoring = true
	b.spawn(func() { b.reconnect(uri, key, keys) })
}

// handOver gives the loop a restored parent connection.
func (b *Broker) handOver(u *uplink) {
	if !b.post(func() { b.attach(u, true) }) {
		u.close()
	}
}

// sleepCtx waits d or until the broker stops; false when it stopped.
func (b *Broker) sleepCtx(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.ctx.Done():
		return false
	}
}

// goneForGood reports whether a failed connection attempt says the parent
// will not come back at that address: nothing listens there any more, or
// whatever does holds another key.
func goneForGood(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, curve.ErrServerKeyMismatch) ||
		errors.Is(err, curve.ErrClientKeyNotAuthorized)
}

// reconnect runs on its own goroutine: it tries the old parent again with
// backoff, then rejoins through the boot server.
func (b *Broker) reconnect(uri string, key curve.Key, keys curve.KeyPair) {
	rp := b.p.rejoin
	deadline := time.Now().Add(rp.reconnectTimeout)
	backoff := reconnectMin
	for {
		u, err := b.dialUplink(b.ctx, uri, key, keys)
		if err == nil {
			b.handOver(u)
			return
		}
		if b.ctx.Err() != nil {
			return
		}
		b.log.Debug("reconnect to parent failed", "uri", uri, "err", err)
		if goneForGood(err) || time.Now().Add(backoff).After(deadline) {
			b.log.Info("parent gone, rejoining through the boot server", "parent", b.Parent(), "err", err)
			break
		}
		if !b.sleepCtx(backoff) {
			return
		}
		backoff = min(2*backoff, reconnectMax)
	}
	b.rejoin()
}

// rejoin reclaims this broker's rank from rank 0, waits for its parent
// rank to be online again (a replacement broker, usually), exchanges keys
// with it and connects. Each round renews the reclaim, so an orphaned
// subtree keeps its ranks while it waits; the broker stops when rank 0
// says another broker holds its rank, or when it cannot reach rank 0 at
// all for ParentTimeout.
func (b *Broker) rejoin() {
	rp := b.p.rejoin
	backoff := reconnectMin
	var unreachableSince time.Time
	for b.ctx.Err() == nil {
		u, err := b.rejoinOnce(rp)
		if err == nil {
			b.handOver(u)
			return
		}
		if b.ctx.Err() != nil {
			return
		}
		switch {
		case fluxkit.Errno(err) == fluxkit.EEXIST:
			b.post(func() { b.fail(fmt.Errorf("%w: %w", ErrReplaced, err)) })
			return
		case errors.Is(err, ErrParentTimeout):
			unreachableSince = time.Time{}
			backoff = reconnectMin
			b.log.Info("rejoin: parent still offline, reclaiming again", "parent", b.Parent())
			continue
		}
		if unreachableSince.IsZero() {
			unreachableSince = time.Now()
		} else if time.Since(unreachableSince) > rp.parentTimeout {
			b.post(func() { b.fail(fmt.Errorf("%w: rejoining through the boot server: %w", ErrParentLost, err)) })
			return
		}
		b.log.Info("rejoin failed, retrying", "err", err)
		if !b.sleepCtx(backoff) {
			return
		}
		backoff = min(2*backoff, reconnectMax)
	}
}

// rejoinOnce is one round of rejoin: reclaim, parent wait, kex, connect.
func (b *Broker) rejoinOnce(rp *rejoinParams) (*uplink, error) {
	subtree, ok := ask(b, func() string { return b.below.ids().String() })
	if !ok {
		return nil, errClosed
	}
	boot, err := DialBoot(b.ctx, ClientConfig{BootURI: rp.bootURI, Keys: rp.owner, Transport: b.p.transport, Logger: b.log, HandshakeTimeout: b.p.handshakeTimeout})
	if err != nil {
		return nil, err
	}
	defer boot.Close()
	var raw json.RawMessage
	req := reclaimRequest{Rank: b.rank, Subtree: subtree, Hostname: b.p.hostname, Holder: b.p.keys.Public.String()}
	if err := rpc(b.ctx, boot, topicReclaim, 0, req, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", topicReclaim, err)
	}
	info, err := parseGetinfoResponse(raw)
	if err != nil {
		return nil, err
	}
	if info.Rank != b.rank || info.Size != b.size {
		return nil, fluxkit.Errorf(fluxkit.EPROTO, "%s: answered rank %d of %d, not rank %d of %d", topicReclaim, info.Rank, info.Size, b.rank, b.size)
	}
	parent := uint32(b.Parent())
	if err := waitOnline(b.ctx, boot, parent, rp.parentTimeout); err != nil {
		return nil, err
	}
	// A fresh client key: the parent binds each key to a rank once, and a
	// replacement parent's key store is new anyway.
	keys, err := curve.GenerateKeyPair(nil)
	if err != nil {
		return nil, err
	}
	var kexRaw json.RawMessage
	kreq := kexRequest{Name: strconv.FormatUint(uint64(b.rank), 10), Pubkey: keys.Public.String()}
	if err := rpc(b.ctx, boot, topicKex, parent, kreq, &kexRaw); err != nil {
		return nil, fmt.Errorf("overlay.flub-kex to rank %d: %w", parent, err)
	}
	pkey, uri, err := parseKexResponse(kexRaw)
	if err != nil {
		return nil, err
	}
	if rp.parentURI != nil {
		uri = rp.parentURI(uri)
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.p.handshakeTimeout)
	defer cancel()
	return b.dialUplink(ctx, uri, pkey, keys)
}
