package jsonscan_test

import (
	"fmt"

	"github.com/fluxkit/fluxkit/internal/jsonscan"
)

// Members walks an object once, handing out each value as a sub-slice of
// the input; the typed readers then decode the values jansson's way.
func ExampleMembers() {
	b := []byte(`{"id":42,"t":1.5,"name":"sleep","ctx":{"status":0}}`)
	if err := jsonscan.Check(b); err != nil {
		fmt.Println(err)
		return
	}
	_ = jsonscan.Members(b, func(key string, v []byte) error {
		switch jsonscan.KindOf(v) {
		case jsonscan.Integer:
			n, _ := jsonscan.Int(v)
			fmt.Println(key, "integer", n)
		case jsonscan.Real:
			f, _ := jsonscan.Float(v)
			fmt.Println(key, "real", f)
		case jsonscan.String:
			s, _ := jsonscan.Unquote(v)
			fmt.Println(key, "string", s)
		default:
			fmt.Println(key, "raw", string(v))
		}
		return nil
	})
	_, err := jsonscan.Int([]byte(`8.0`))
	fmt.Println("8.0 as an integer:", err)
	// Output:
	// id integer 42
	// t real 1.5
	// name string sleep
	// ctx raw {"status":0}
	// 8.0 as an integer: wrong type
}
