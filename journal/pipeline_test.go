package journal

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
)

// endRecv replays msgs, then ends the stream with end (or, nil, blocks
// until ctx is done).
type endRecv struct {
	msgs [][]byte
	end  error
	i    int
}

func (r *endRecv) Recv(ctx context.Context) (*fluxkit.Message, error) {
	if r.i < len(r.msgs) {
		r.i++
		return &fluxkit.Message{Payload: r.msgs[r.i-1]}, nil
	}
	if r.end != nil {
		return nil, r.end
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func pipelineMsgs(n int) [][]byte {
	var msgs [][]byte
	for i := 1; i <= n; i++ {
		msgs = append(msgs, fmt.Appendf(nil, `{"id":%d,"events":[{"timestamp":%d,"name":"submit","context":{"userid":1,"urgency":16}},{"timestamp":%d.5,"name":"x%d"}]}`, i, i, i, i))
	}
	return append(msgs, []byte(`{"id":5,"events":[{"timestamp":1}]}`), []byte(`{"id":`))
}

// Every response arrives in order, decoded as parseMessage decodes it,
// then the stream's end; the decoder goroutine is gone on return.
func TestPipelineOrderAndEnd(t *testing.T) {
	leakcheck.Check(t)
	msgs := pipelineMsgs(3 * decodeQueue)
	end := fluxkit.Errorf(fluxkit.ENODATA, "end")
	var got int
	var last error
	pipeline(context.Background(), &endRecv{msgs: msgs, end: end}, func(d *decodedMsg) bool {
		if d.recvErr != nil {
			last = d.recvErr
			return true
		}
		if got >= len(msgs) || string(d.payload) != string(msgs[got]) {
			t.Fatalf("response %d out of order: %s", got, d.payload)
		}
		want, werr := parseMessage(msgs[got], nil)
		if (werr == nil) != (d.err == nil) || werr != nil && werr.Error() != d.err.Error() ||
			want.id != d.msg.id || len(want.entries) != len(d.msg.entries) || want.entryAt != d.msg.entryAt {
			t.Fatalf("response %d decoded as %+v (%v), want %+v (%v)", got, d.msg, d.err, want, werr)
		}
		for i := range want.entries {
			if want.entries[i].Name != d.msg.entries[i].Name || want.entries[i].Timestamp != d.msg.entries[i].Timestamp ||
				string(want.entries[i].Context) != string(d.msg.entries[i].Context) {
				t.Fatalf("response %d entry %d: %+v, want %+v", got, i, d.msg.entries[i], want.entries[i])
			}
		}
		got++
		return true
	})
	if got != len(msgs) || !errors.Is(last, fluxkit.ENODATA) {
		t.Fatalf("got %d responses and end %v, want %d and ENODATA", got, last, len(msgs))
	}
}

// fn stopping ends the pipeline (and its goroutine) with the stream open.
func TestPipelineStop(t *testing.T) {
	leakcheck.Check(t)
	n := 0
	pipeline(context.Background(), &endRecv{msgs: pipelineMsgs(10 * decodeQueue)}, func(d *decodedMsg) bool {
		n++
		return n < 3
	})
	if n != 3 {
		t.Fatalf("fn called %d times after stopping at 3", n)
	}
}

// Cancelling ctx ends a pipeline waiting on Recv.
func TestPipelineCancel(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithCancel(context.Background())
	done, all := make(chan struct{}), make(chan struct{})
	n := 0
	go func() {
		defer close(done)
		pipeline(ctx, &endRecv{msgs: pipelineMsgs(2)}, func(d *decodedMsg) bool {
			if d.recvErr == nil {
				if n++; n == 4 {
					close(all)
				}
			}
			return true
		})
	}()
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Fatal("responses not delivered")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("pipeline did not end on cancel")
	}
	if n != 4 {
		t.Fatalf("%d responses before cancel, want 4", n)
	}
}
