package jsonscan_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/fluxkit/fluxkit/internal/jsonscan"
)

func depth(b []byte) int {
	d, max := 0, 0
	for _, c := range b {
		switch c {
		case '[', '{':
			d++
			if d > max {
				max = d
			}
		case ']', '}':
			d--
		}
	}
	return max
}

func FuzzScanner(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `{"a":[1,2.5e3,-0,"x\u00e9\n",true,false,null]}`, `{"a":}`,
		`[1,]`, `"\ud800"`, `01`, `1.`, `-`, `{"a" 1}`, ` 1 `, `"\x"`, "\"\x01\"", `{"a":1}x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if depth(b) > 200 {
			return
		}
		got := jsonscan.Check(b) == nil
		if want := json.Valid(b); got != want {
			t.Fatalf("jsonscan.Check(%q) = %v, json.Valid = %v", b, got, want)
		}
		if got && jsonscan.KindOf(jsonscan.Trim(b)) == jsonscan.Object {
			ref := map[string]json.RawMessage{}
			if err := json.Unmarshal(b, &ref); err != nil {
				t.Fatal(err)
			}
			n := 0
			seen := map[string]bool{}
			if err := jsonscan.Members(jsonscan.Trim(b), func(k string, v []byte) error {
				if !seen[k] {
					n++
				}
				seen[k] = true
				return nil
			}); err != nil {
				t.Fatalf("jsonscan.Members(%q): %v", b, err)
			}
			if utf8.Valid(b) && n != len(ref) {
				t.Fatalf("%q: %d members, encoding/json %d", b, n, len(ref))
			}
			// The fast walker finds the same members on validated input.
			var slow, fast []string
			_ = jsonscan.Members(jsonscan.Trim(b), func(k string, v []byte) error { slow = append(slow, k+"="+string(v)); return nil })
			if err := jsonscan.FastMembers(jsonscan.Trim(b), func(k string, v []byte) error { fast = append(fast, k+"="+string(v)); return nil }); err != nil {
				t.Fatalf("jsonscan.FastMembers(%q): %v", b, err)
			}
			if strings.Join(slow, "\x00") != strings.Join(fast, "\x00") {
				t.Fatalf("%q: jsonscan.Members %q, jsonscan.FastMembers %q", b, slow, fast)
			}
		}
		if got && (jsonscan.KindOf(jsonscan.Trim(b)) == jsonscan.Integer || jsonscan.KindOf(jsonscan.Trim(b)) == jsonscan.Real) {
			f1, err1 := jsonscan.Float(jsonscan.Trim(b))
			var f2 float64
			err2 := json.Unmarshal(b, &f2)
			if (err1 == nil) != (err2 == nil) || err1 == nil && f1 != f2 {
				t.Fatalf("jsonscan.Float(%q) = %v %v, encoding/json %v %v", b, f1, err1, f2, err2)
			}
		}
	})
}
