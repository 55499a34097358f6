// Package brokertest starts in-process test brokers for tests: the
// testing-bound companion of testbroker, kept apart so that the programs
// that embed a test broker do not link the testing package.
package brokertest

import (
	"testing"

	"github.com/fluxkit/fluxkit/internal/testbroker"
)

// New starts an instance for a test and closes it when the test ends, failing
// the test when the configuration is bad or the instance does not close
// cleanly.
func New(t testing.TB, cfg testbroker.Config) *testbroker.Broker {
	t.Helper()
	b, err := testbroker.Start(cfg)
	if err != nil {
		t.Fatalf("testbroker: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("testbroker: close: %v", err)
		}
	})
	return b
}
