package testbroker

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/fluxkit/fluxkit"
)

// Rank is the state of one rank.
type Rank struct {
	b  *Broker
	id uint32

	mu                   sync.Mutex
	down                 bool
	link                 Link
	toParent, fromParent wire // the link to the parent, each way
	attrs                map[string]string
	config               json.RawMessage
	env                  map[string]string
	modules              map[string]*module
	latency              map[string]time.Duration
	fail                 map[string]error
	log                  []ModuleOp
	services             map[string]*Handle
}

// ID is the rank number.
func (r *Rank) ID() uint32 { return r.id }

func (r *Rank) isUp() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.down
}

// SetAttr sets a broker attribute.
func (r *Rank) SetAttr(name, value string) { r.set(r.attrs, name, value) }

// Attr returns a broker attribute.
func (r *Rank) Attr(name string) (string, bool) { return r.get(r.attrs, name) }

// set and get write and read one of the rank's string tables (attributes,
// environment) under its lock.
func (r *Rank) set(table map[string]string, name, value string) {
	r.mu.Lock()
	table[name] = value
	r.mu.Unlock()
}

func (r *Rank) get(table map[string]string, name string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := table[name]
	return v, ok
}

// SetConfig replaces the rank's configuration with the given TOML.
func (r *Rank) SetConfig(tomlText string) error { return r.setConfig(configFromTOML, tomlText) }

// SetConfigJSON replaces the rank's configuration with a JSON object, kept
// byte for byte.
func (r *Rank) SetConfigJSON(jsonText string) error { return r.setConfig(configFromJSON, jsonText) }

// setConfig replaces the configuration with what parse makes of text.
func (r *Rank) setConfig(parse func(string) (json.RawMessage, error), text string) error {
	conf, err := parse(text)
	if err != nil {
		return fmt.Errorf("rank %d: %w", r.id, err)
	}
	r.mu.Lock()
	r.config = conf
	r.mu.Unlock()
	return nil
}

// SetEnv sets a variable of the broker environment.
func (r *Rank) SetEnv(name, value string) { r.set(r.env, name, value) }

// Env returns a variable of the broker environment.
func (r *Rank) Env(name string) (string, bool) { return r.get(r.env, name) }

// ModuleOp records one module.load or module.remove.
type ModuleOp struct {
	Op         string // "load" or "remove"
	Name       string
	Args       []string
	Start, End time.Time
	Err        error
}

type module struct {
	name, path string
	args       []string
	loading    bool
}

// Modules returns the names of the loaded modules, sorted.
func (r *Rank) Modules() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for n, m := range r.modules {
		if !m.loading {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// SetModuleLatency makes module.load and module.remove of name take d.
func (r *Rank) SetModuleLatency(name string, d time.Duration) {
	r.mu.Lock()
	r.latency[name] = d
	r.mu.Unlock()
}

// FailModule makes loads of name fail with err; nil clears the failure.
func (r *Rank) FailModule(name string, err error) {
	r.mu.Lock()
	if err == nil {
		delete(r.fail, name)
	} else {
		r.fail[name] = err
	}
	r.mu.Unlock()
}

// ModuleLog returns the module operations completed on the rank, in order of
// completion.
func (r *Rank) ModuleLog() []ModuleOp {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ModuleOp(nil), r.log...)
}

// provider returns the handle serving service on this rank.
func (r *Rank) provider(service string) *Handle {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.services[service]
}

func (r *Rank) addService(service string, h *Handle) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.services[service]; ok && p != h {
		return fluxkit.Errorf(fluxkit.EEXIST, "service %s is already registered on rank %d", service, r.id)
	}
	r.services[service] = h
	return nil
}

func (r *Rank) removeService(service string, h *Handle) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.services[service] == h {
		delete(r.services, service)
	}
}
