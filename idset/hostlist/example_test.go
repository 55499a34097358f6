package hostlist_test

import (
	"fmt"

	"github.com/fluxkit/fluxkit/idset/hostlist"
)

func ExampleParse() {
	h, err := hostlist.Parse("fooi,foo1,foo2,foo3,foo5,foo7,foo8")
	if err != nil {
		panic(err)
	}
	fmt.Println(h.Len(), h)

	h = hostlist.MustParse("node[01-03]-eth0 login[1-2]")
	for name := range h.All() {
		fmt.Println(name)
	}

	_, err = hostlist.Parse("foo[0-1048576]")
	fmt.Println(err)
	// Output:
	// 7 fooi,foo[1-3,5,7-8]
	// node01-eth0
	// node02-eth0
	// node03-eth0
	// login1
	// login2
	// hostlist: parsing "foo[0-1048576]": "foo[0-1048576]": range '0-1048576' has more than 1048576 hosts
}

func ExampleHostlist_String() {
	for _, s := range []string{"foo9,foo10", "foo09,foo10", "foo01,foo1", "foo[001-002],foo3", "foo1,foo1"} {
		fmt.Println(hostlist.MustParse(s))
	}
	// Output:
	// foo[9-10]
	// foo[09-10]
	// foo[01,1]
	// foo[001-002,3]
	// foo[1,1]
}

func ExampleHostlist_Sort() {
	h := hostlist.MustParse("[0-20],45,12,015")
	fmt.Println(h.Sort())
	fmt.Println(h.Uniq())
	// Output:
	// [0-12,12-20,45,015]
	// [0-20,45,015]
}

func ExampleHostlist_Find() {
	h := hostlist.MustParse("login,node[08-12]")
	fmt.Println(h.Find("node10"), h.Find("node9"), h.Find("login"))
	name, ok := h.Nth(2)
	fmt.Println(name, ok)
	// Output:
	// 3 -1 0
	// node09 true
}

func ExampleOf() {
	h := hostlist.Of("node3", "node4", "node5", "gpu1")
	h = h.Append("node6")
	fmt.Println(h, h.Len())
	// Output: node[3-5],gpu1,node6 5
}
