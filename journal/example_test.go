package journal_test

import (
	"fmt"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/journal"
)

// A store and an index driven by hand: the producer posts a job's events,
// the listener's responses feed the consumer, and the consumer answers a
// list-id query.
func Example() {
	store, err := journal.NewStore(journal.StoreConfig{})
	if err != nil {
		panic(err)
	}
	l := store.Subscribe(journal.ListenerKey{Sender: "job-list"}, 0, true, journal.Filter{})
	jobspec := []byte(`{"version":1,"resources":[{"type":"slot","count":1,"label":"task","with":[{"type":"core","count":2}]}],` +
		`"tasks":[{"command":["hostname"],"slot":"task","count":{"per_slot":1}}],"attributes":{"system":{"duration":0}}}`)
	id, _ := store.Submit(journal.Submission{ID: 7, Timestamp: 1, Userid: 100, Urgency: 16, Jobspec: jobspec})
	_ = store.Post(id, 2, "validate", nil)

	x := journal.NewIndex(journal.IndexConfig{})
	msgs, _ := store.Next(l, nil, 100)
	for _, m := range msgs {
		if err := x.Journal(m); err != nil {
			panic(err)
		}
	}
	w := &printer{}
	x.Request(w, fluxkit.NewRequest(journal.TopicListID, 0, []byte(`{"id":7,"attrs":["state","name","ncores"]}`)))
	// Output:
	// {"job":{"id":7,"state":2,"name":"hostname","ncores":2}}
}

type printer struct{}

func (printer) Respond(p []byte) error     { fmt.Println(string(p)); return nil }
func (printer) RespondError(e error) error { fmt.Println("error:", e); return nil }
