package kvs

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/fluxkit/fluxkit"
)

// Serve registers kvs.lookup, kvs.commit, kvs.namespace-create and
// kvs.namespace-remove on h, answering from s. The returned function
// unregisters them.
func (s *Store) Serve(h fluxkit.Handle) (func(), error) {
	var unregs []func()
	stop := func() {
		for _, u := range unregs {
			u()
		}
	}
	for _, topic := range topics {
		u, err := h.Register(topic, fluxkit.RoleUser, s.serve)
		if err != nil {
			stop()
			return nil, err
		}
		unregs = append(unregs, u)
	}
	return stop, nil
}

// decodeFor decodes req into in and applies the access rule to the
// namespace it names, *ns (a field of in).
func decodeFor(req *fluxkit.Message, in any, ns *string) error {
	if err := fluxkit.DecodePayload(req, in); err != nil {
		return err
	}
	return guestAllowed(req, *ns)
}

// guestAllowed applies the access rule to a request for namespace ns.
func guestAllowed(req *fluxkit.Message, ns string) error {
	if !req.Cred().IsOwner() && (ns == "" || ns == Primary) {
		return fluxkit.Errorf(fluxkit.EPERM, fluxkit.TextOwnerRequired)
	}
	return nil
}

// topics are the request topics a Store answers.
var topics = [...]string{"kvs.lookup", "kvs.commit", "kvs.namespace-create", "kvs.namespace-remove"}

// Answer answers one request (kvs.lookup, kvs.commit, kvs.namespace-create
// or kvs.namespace-remove) and returns the
// response payload, for brokers that dispatch requests themselves rather
// than through a [fluxkit.Handle]. Namespace changes are owner-only.
func (s *Store) Answer(req *fluxkit.Message) ([]byte, error) {
	var v any
	var err error
	switch req.Topic {
	case "kvs.lookup":
		v, err = s.answerLookup(req)
	case "kvs.commit":
		v, err = s.answerCommit(req)
	case "kvs.namespace-create", "kvs.namespace-remove":
		err = s.answerNamespace(req)
	default:
		err = fluxkit.Errorf(fluxkit.ENOSYS, "Unknown service method '%s'", req.Topic)
	}
	if err != nil || v == nil {
		return nil, err
	}
	return json.Marshal(v)
}

func (s *Store) answerLookup(req *fluxkit.Message) (any, error) {
	var in lookupRequest
	if err := decodeFor(req, &in, &in.Namespace); err != nil {
		return nil, err
	}
	if in.Key == "" {
		return nil, fluxkit.Errorf(fluxkit.EINVAL, "no key")
	}
	if in.Flags&(FlagWatch|FlagWaitCreate) != 0 {
		return nil, fluxkit.Errorf(fluxkit.ENOSYS, "watching is served by kvs-watch, which this KVS does not have")
	}
	t, err := s.Lookup(in.Namespace, in.Key, in.Flags)
	if err != nil {
		return nil, err
	}
	return struct {
		Val Treeobj `json:"val"`
	}{t}, nil
}

func (s *Store) answerCommit(req *fluxkit.Message) (any, error) {
	var in commitRequest
	if err := decodeFor(req, &in, &in.Namespace); err != nil {
		return nil, err
	}
	seq, err := s.Commit(in.Namespace, in.Ops)
	if err != nil {
		return nil, err
	}
	return map[string]any{"rootref": fmt.Sprintf("sha1-%040x", seq), "rootseq": seq}, nil
}

func (s *Store) answerNamespace(req *fluxkit.Message) error {
	var in struct {
		Namespace string `json:"namespace"`
	}
	if err := fluxkit.DecodePayload(req, &in); err != nil {
		return err
	}
	if !req.Cred().IsOwner() {
		return fluxkit.Errorf(fluxkit.EPERM, fluxkit.TextOwnerRequired)
	}
	if req.Topic == "kvs.namespace-create" {
		return s.CreateNamespace(in.Namespace)
	}
	return s.RemoveNamespace(in.Namespace)
}

// serve adapts Answer to a handler.
func (s *Store) serve(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	p, err := s.Answer(req)
	if err != nil {
		_ = w.RespondError(err)
		return
	}
	_ = w.Respond(p)
}

// ServeLookup answers a kvs.lookup request.
func (s *Store) ServeLookup(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	s.serve(ctx, w, req)
}

// ServeCommit answers a kvs.commit request.
func (s *Store) ServeCommit(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	s.serve(ctx, w, req)
}

// ServeNamespaceCreate answers a kvs.namespace-create request.
func (s *Store) ServeNamespaceCreate(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	s.serve(ctx, w, req)
}

// ServeNamespaceRemove answers a kvs.namespace-remove request.
func (s *Store) ServeNamespaceRemove(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	s.serve(ctx, w, req)
}
