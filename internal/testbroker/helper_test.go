package testbroker

import "testing"

// newBroker starts an instance for a test and closes it when the test ends,
// as brokertest.New does for other packages (which this one cannot import).
func newBroker(t testing.TB, cfg Config) *Broker {
	t.Helper()
	b, err := Start(cfg)
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
