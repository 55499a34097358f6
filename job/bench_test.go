package job_test

import (
	"encoding/json"
	"testing"

	"github.com/fluxkit/fluxkit/idset"
	"github.com/fluxkit/fluxkit/job"
)

// The paired benchmarks decode the same real v0.88 documents four ways:
// the scanner (Decoder, reused as a journal consumer reuses it), the
// scanner trusting input already checked, encoding/json with the same
// checks (ref_test.go), and encoding/json into a tagged struct with no
// checks beyond its own, the least encoding/json can cost. The scanner is
// kept because it is several times faster than either: see the package
// doc and the figures these print.

type plainJobspec struct {
	Version   int `json:"version"`
	Resources []struct {
		Type  string `json:"type"`
		Count int    `json:"count"`
		Label string `json:"label"`
		With  []struct {
			Type  string `json:"type"`
			Count int    `json:"count"`
		} `json:"with"`
	} `json:"resources"`
	Tasks []struct {
		Command []string `json:"command"`
		Slot    string   `json:"slot"`
		Count   struct {
			PerSlot int `json:"per_slot"`
		} `json:"count"`
	} `json:"tasks"`
	Attributes struct {
		System struct {
			Duration float64                    `json:"duration"`
			Cwd      string                     `json:"cwd"`
			Shell    map[string]json.RawMessage `json:"shell"`
		} `json:"system"`
	} `json:"attributes"`
}

type plainR struct {
	Version   int `json:"version"`
	Execution struct {
		RLite []struct {
			Rank     string            `json:"rank"`
			Children map[string]string `json:"children"`
		} `json:"R_lite"`
		Nodelist   []string `json:"nodelist"`
		Starttime  float64  `json:"starttime"`
		Expiration float64  `json:"expiration"`
	} `json:"execution"`
}

func BenchmarkDecodeJobspec(b *testing.B) {
	doc := []byte(realJobspec)
	b.Run("scanner", func(b *testing.B) {
		var d job.Decoder
		var js job.Jobspec
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			if err := d.Jobspec(doc, &js); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scanner-trusted", func(b *testing.B) {
		d := job.Decoder{Trusted: true}
		var js job.Jobspec
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			if err := d.Jobspec(doc, &js); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json-checked", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			if _, err := refJobspec(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json-struct", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			var js plainJobspec
			if err := json.Unmarshal(doc, &js); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecodeR(b *testing.B) {
	doc := []byte(realR)
	b.Run("scanner", func(b *testing.B) {
		var d job.Decoder
		var r job.R
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			if err := d.R(doc, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scanner-trusted", func(b *testing.B) {
		d := job.Decoder{Trusted: true}
		var r job.R
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			if err := d.R(doc, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json-checked", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			if _, err := refR(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json-struct", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			var r plainR
			if err := json.Unmarshal(doc, &r); err != nil {
				b.Fatal(err)
			}
			// The idsets have to be parsed either way.
			for _, e := range r.Execution.RLite {
				if _, err := idset.Parse(e.Rank); err != nil {
					b.Fatal(err)
				}
				for _, c := range e.Children {
					if _, err := idset.Parse(c); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	})
}

func BenchmarkDecodeEvent(b *testing.B) {
	doc := []byte(`{"timestamp":1796403402.262248,"name":"submit","context":{"userid":0,"urgency":16,"flags":0,"version":1}}`)
	b.Run("scanner", func(b *testing.B) {
		var d job.Decoder
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			if _, err := d.Event(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scanner-trusted", func(b *testing.B) {
		d := job.Decoder{Trusted: true}
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			if _, err := d.Event(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json-struct", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			var e struct {
				Timestamp float64         `json:"timestamp"`
				Name      string          `json:"name"`
				Context   json.RawMessage `json:"context"`
			}
			if err := json.Unmarshal(doc, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
