package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/journal"
	"github.com/fluxkit/fluxkit/kvs"
)

// options are what serve needs besides the Handle.
type options struct {
	log *slog.Logger
	// service is the service name; "" is job-list.
	service string
	// ready is called once the journal's backlog is indexed.
	ready func()
	// gone is closed when the instance goes away (nil: never).
	gone <-chan struct{}
}

// serve runs the job-list service on h until ctx ends, the job manager
// ends the journal, or the instance goes away, all of which are a clean
// end (nil); it fails when the service cannot start or the journal
// breaks. It takes any Handle: a real broker's (package connect) or the
// in-process test broker's.
func serve(ctx context.Context, h fluxkit.Handle, o options) error {
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	conf, err := instanceConfig(ctx, h)
	if err != nil {
		return err
	}
	c, err := journal.NewConsumer(h, journal.ConsumerConfig{
		Logger:         o.log,
		Service:        o.service,
		Queues:         conf.Queues,
		MaxComparisons: &conf.MaxComparisons,
		MaxHosts:       int(h.Size()),
		PrivateMode:    conf.PrivateMode,
		Lookup:         kvsLookup(h),
	})
	if err != nil {
		return err
	}
	defer c.Close()
	select {
	case <-c.Initialized():
		if o.ready != nil {
			o.ready()
		}
	case <-c.Done():
		return ended(c, o.gone)
	case <-ctx.Done():
		return nil
	case <-o.gone:
		return nil
	}
	select {
	case <-c.Done():
		return ended(c, o.gone)
	case <-ctx.Done():
	case <-o.gone:
	}
	return nil
}

// ended is the outcome of a journal that ended: flux-core's job-list
// exits cleanly when the job manager ends it (ENODATA), and so does this
// program when the instance has gone away; anything else is a failure.
func ended(c *journal.Consumer, gone <-chan struct{}) error {
	err := c.Err()
	if err == nil {
		return nil
	}
	select {
	case <-gone:
		return nil
	default:
	}
	if fluxkit.Errno(err) == fluxkit.ECONNRESET {
		return nil
	}
	return err
}

// instanceConfig reads job-list's settings from the broker's
// configuration, as the module reads flux_get_conf.
func instanceConfig(ctx context.Context, h fluxkit.Handle) (journal.Config, error) {
	var raw json.RawMessage
	if err := fluxkit.RPC(ctx, h, "config.get", fluxkit.NodeidAny, nil, &raw); err != nil {
		return journal.Config{}, fmt.Errorf("config.get: %w", err)
	}
	conf, err := journal.ParseConfig(raw)
	if err != nil {
		return journal.Config{}, err
	}
	return conf, nil
}

// kvsLookup tells whether a job exists as flux-core's job-list does: by
// looking up its KVS directory (job.<dothex>) in the primary namespace.
func kvsLookup(h fluxkit.Handle) func(ctx context.Context, id fluxkit.JobID) error {
	return func(ctx context.Context, id fluxkit.JobID) error {
		_, err := kvs.LookupTreeobj(ctx, h, kvs.Primary, id.KVS(), kvs.FlagReadDir)
		if err != nil && fluxkit.Errno(err) == 0 {
			return errors.Join(fluxkit.EPROTO, err)
		}
		return err
	}
}
