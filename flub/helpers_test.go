package flub

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/stretchr/testify/require"
)

// instance is a test instance: rank 0 plus the owner key pair.
type instance struct {
	t     testing.TB
	root  *Broker
	owner curve.KeyPair
	topo  string
}

func testLogger() *slog.Logger {
	if os.Getenv("FLUB_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

func startInstance(t testing.TB, cfg Config) *instance {
	t.Helper()
	owner, err := curve.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Owner = owner.Public
	if cfg.Topo == "" {
		cfg.Topo = "kary:2"
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "host0"
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 100 * time.Millisecond
	}
	if cfg.TorpidMax == 0 {
		cfg.TorpidMax = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	root, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return &instance{t: t, root: root, owner: owner, topo: cfg.Topo}
}

func (in *instance) joinConfig(host string) JoinConfig {
	return JoinConfig{
		BootURI: in.root.BootURI(), Owner: in.owner, Topo: in.topo, Hostname: host,
		Heartbeat: 100 * time.Millisecond, TorpidMax: 2 * time.Second,
		ParentTimeout: 20 * time.Second, Logger: testLogger(),
	}
}

func (in *instance) join(ctx context.Context, host string) (*Broker, error) {
	b, err := Join(ctx, in.joinConfig(host))
	if err == nil {
		in.t.Cleanup(func() { b.Close() })
	}
	return b, err
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var _ = leakcheck.Check

// logRecorder keeps the messages of every log record.
type logRecorder struct {
	mu   *sync.Mutex
	msgs *[]string
}

func newLogRecorder() (*slog.Logger, func() []string) {
	r := logRecorder{mu: &sync.Mutex{}, msgs: new([]string)}
	return slog.New(r), func() []string {
		r.mu.Lock()
		defer r.mu.Unlock()
		return append([]string(nil), *r.msgs...)
	}
}

func (r logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	*r.msgs = append(*r.msgs, rec.Message)
	r.mu.Unlock()
	return nil
}
func (r logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r logRecorder) WithGroup(string) slog.Handler      { return r }

// requireError checks that err carries errno and that its text contains
// text.
func requireError(t testing.TB, err error, errno error, text string, msgAndArgs ...any) {
	t.Helper()
	require.ErrorIs(t, err, errno, msgAndArgs...)
	require.ErrorContains(t, err, text, msgAndArgs...)
}
