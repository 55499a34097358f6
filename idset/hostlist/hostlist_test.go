package hostlist

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func hosts(h Hostlist) []string { return slices.Collect(h.All()) }

// checkInvariants verifies the bookkeeping every Hostlist must keep.
func checkInvariants(t testing.TB, h Hostlist) {
	t.Helper()
	n := 0
	for i, r := range h.ranges {
		require.Equal(t, n, r.off, "range %d offset", i)
		if r.kind != kindSingle {
			require.LessOrEqual(t, r.lo, r.hi, "range %d inverted", i)
		}
		if r.kind != kindExpanded {
			require.Empty(t, r.suffix, "range %d has a suffix", i)
		}
		n += r.count()
	}
	require.Equal(t, n, h.n, "cached count")
	if len(h.ranges) == 0 {
		require.Nil(t, h.ranges, "empty lists share the zero value")
	}
}

func expand(prefix string, lo, hi int, width int, suffix string) []string {
	var out []string
	for i := lo; i <= hi; i++ {
		out = append(out, fmt.Sprintf("%s%0*d%s", prefix, width, i, suffix))
	}
	return out
}

type codecTest struct {
	in    string
	hosts []string // nil: not checked
	out   string
	count int
}

// formatVectors pin the hostlist format as flux-core's libhostlist
// implements it: padding width, suffixes after a bracket, duplicates
// kept, compatible widths merged, plain names split at trailing digits.
var formatVectors = []codecTest{
	{"foo[1-5]", expand("foo", 1, 5, 1, ""), "foo[1-5]", 5},
	{"[00-2]", []string{"00", "01", "02"}, "[00-02]", 3},
	{"foo[0-4]-eth2", expand("foo", 0, 4, 1, "-eth2"), "foo0-eth2,foo1-eth2,foo2-eth2,foo3-eth2,foo4-eth2", 5},
	{"foo1,foo1,foo1", []string{"foo1", "foo1", "foo1"}, "foo[1,1,1]", 3},
	{"fooi,foo1,foo2,foo3,foo5,foo7,foo8", []string{"fooi", "foo1", "foo2", "foo3", "foo5", "foo7", "foo8"}, "fooi,foo[1-3,5,7-8]", 7},

	{"foo09,foo10", []string{"foo09", "foo10"}, "foo[09-10]", 2},
	{"foo9,foo10", []string{"foo9", "foo10"}, "foo[9-10]", 2},
	{"foo[01,1]", []string{"foo01", "foo1"}, "foo[01,1]", 2},
	{"foo01,foo1", []string{"foo01", "foo1"}, "foo[01,1]", 2},
	{"foo[001-002],foo3", []string{"foo001", "foo002", "foo3"}, "foo[001-002,3]", 3},
	{"[9-10]", []string{"9", "10"}, "[9-10]", 2},
	{"foo[005,4,11-13]", []string{"foo005", "foo4", "foo11", "foo12", "foo13"}, "foo[005,4,11-13]", 5},
	{"foo-1a-2,foo-1a-3", []string{"foo-1a-2", "foo-1a-3"}, "foo-1a-[2-3]", 2},
	{"foo0-eth2", []string{"foo0-eth2"}, "foo0-eth2", 1},
	{"host", []string{"host"}, "host", 1},
	{"14636", []string{"14636"}, "14636", 1},
	{"foo[1-3] bar4", []string{"foo1", "foo2", "foo3", "bar4"}, "foo[1-3],bar4", 4},
	{"extra[0-3]", expand("extra", 0, 3, 1, ""), "extra[0-3]", 4},
	{"foo[0-1048575]", nil, "foo[0-1048575]", 1 << 20},
}

// upstreamVectors are the codec cases of flux-core's libhostlist tests.
var upstreamVectors = []codecTest{
	{"foo-1a-2,foo-1a-3", nil, "foo-1a-[2-3]", 2},
	{"foo1,foo2,foo3,fooi", nil, "foo[1-3],fooi", 4},
	{"foo1,fooi,foo2,foo3", nil, "foo1,fooi,foo[2-3]", 4},
	{"fooi,foo1,foo2,foo3", nil, "fooi,foo[1-3]", 4},
	{"1,2,3,4,5,9", nil, "[1-5,9]", 6},
	{",1,2,3,4,5,9", nil, "[1-5,9]", 6},
	{",1,2,3,4,5,9,", nil, "[1-5,9]", 6},
	{"[1-5]", nil, "[1-5]", 5},
	{"foo[1,3]-bar", []string{"foo1-bar", "foo3-bar"}, "foo1-bar,foo3-bar", 2},
	{"[00-03]p", []string{"00p", "01p", "02p", "03p"}, "00p,01p,02p,03p", 4},
	{"p[00-3]p", []string{"p00p", "p01p", "p02p", "p03p"}, "p00p,p01p,p02p,p03p", 4},
	{"", []string{}, "", 0},
	{"mcr[336-359,488-550,553,556,559,561,567,569-571,573-575,578,581,584,587-589,592,594,597,600-602,605,608,610,618-622,627,634,636-670,687-696,699-733,735-742,744-760,762-773]", nil,
		"mcr[336-359,488-550,553,556,559,561,567,569-571,573-575,578,581,584,587-589,592,594,597,600-602,605,608,610,618-622,627,634,636-670,687-696,699-733,735-742,744-760,762-773]", 237},
	{"one,two,three,four,five", nil, "one,two,three,four,five", 5},
	{"really-long-hostname-prefix[10101,55,35,2]", nil, "really-long-hostname-prefix[10101,55,35,2]", 4},
}

// moreVectors pin down tokenising, grouping and padding details.
var moreVectors = []codecTest{
	{" \t,foo1,, bar\t\tbaz ,", []string{"foo1", "bar", "baz"}, "foo1,bar,baz", 3},
	{"foo1,bar,foo2", nil, "foo1,bar,foo2", 3},
	{"foo,foo[1-2]", []string{"foo", "foo1", "foo2"}, "foo,foo[1-2]", 3},
	{"foo[1-2],foo", nil, "foo[1-2],foo", 3},
	{"foo[3],foo[1]", []string{"foo3", "foo1"}, "foo[3,1]", 2},
	{"foo[7]", []string{"foo7"}, "foo7", 1},
	{"foo[1-3],foo[4-6]", nil, "foo[1-6]", 6},
	{"foo[1-3],bar[4-6],foo[7]", nil, "foo[1-3],bar[4-6],foo7", 7},
	{"f00[7-8]", []string{"f007", "f008"}, "f00[7-8]", 2},
	{"foo[8-9],foo[10-11]", nil, "foo[8-11]", 4},
	{"foo[08-09],foo[10-11]", nil, "foo[08-11]", 4},
	{"foo[8-9],foo[010-011]", nil, "foo[8-9,010-011]", 4},
	{"foo9,foo10,foo11", nil, "foo[9-11]", 3},
	{"foo098,foo099,foo100", nil, "foo[098-100]", 3},
	{"foo[1-100]", nil, "foo[1-100]", 100},
	{"foo[0000001-0000002]", []string{"foo0000001", "foo0000002"}, "foo[0000001-0000002]", 2},
	{"node[01-03]-[1-2,6]", []string{"node01-[1-2,6]", "node02-[1-2,6]", "node03-[1-2,6]"}, "node01-[1-2,6],node02-[1-2,6],node03-[1-2,6]", 3},
	{"a[1-2]b[3]", []string{"a1b[3]", "a2b[3]"}, "a1b[3],a2b[3]", 2},
	{"[1-3]x,[4]x", []string{"1x", "2x", "3x", "4x"}, "1x,2x,3x,4x", 4},
	{"foo[18446744073709551614-18446744073709551615],foo0", nil, "foo[18446744073709551614-18446744073709551615,0]", 3},
	{"foo99999999999999999999999", []string{"foo99999999999999999999999"}, "foo99999999999999999999999", 1},
	{"foo18446744073709551615", nil, "foo18446744073709551615", 1},
	{"node-α1,node-α2", []string{"node-α1", "node-α2"}, "node-α[1-2]", 2},
	{"-[1-2]", []string{"-1", "-2"}, "-[1-2]", 2},
}

func runCodec(t *testing.T, tests []codecTest) {
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			h, err := Parse(tt.in)
			require.NoError(t, err)
			checkInvariants(t, h)
			assert.Equal(t, tt.count, h.Len())
			if tt.hosts != nil {
				got := hosts(h)
				if len(tt.hosts) == 0 {
					assert.Empty(t, got)
				} else {
					assert.Equal(t, tt.hosts, got)
				}
			}
			assert.Equal(t, tt.out, h.String())
			text, err := h.MarshalText()
			require.NoError(t, err)
			assert.Equal(t, tt.out, string(text))
		})
	}
}

func TestFormatVectors(t *testing.T)   { runCodec(t, formatVectors) }
func TestUpstreamVectors(t *testing.T) { runCodec(t, upstreamVectors) }
func TestMoreVectors(t *testing.T)     { runCodec(t, moreVectors) }

func TestNode01Suffix(t *testing.T) {
	h := MustParse("node[01-30]-[1-2,6]")
	require.Equal(t, 30, h.Len())
	assert.Equal(t, expand("node", 1, 30, 2, "-[1-2,6]"), hosts(h))
	assert.Len(t, h.ranges, 1, "suffix hosts are stored as one run, not 30 strings")
}

func TestHugeRangeIsCompact(t *testing.T) {
	h := MustParse("foo[0-1048575]")
	assert.Len(t, h.ranges, 1)
	last, ok := h.Nth(h.Len() - 1)
	assert.True(t, ok)
	assert.Equal(t, "foo1048575", last)
	assert.Equal(t, 1048575, h.Find("foo1048575"))

	h = MustParse("foo[0-1048575]-x")
	assert.Len(t, h.ranges, 1)
	assert.Equal(t, 1<<20, h.Len())
	assert.Equal(t, 12345, h.Find("foo12345-x"))
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in, token string
		err       error
		reason    string
	}{
		// flux-core's invalid inputs.
		{"[]", "[]", ErrSyntax, "empty element"},
		{"foo[]", "foo[]", ErrSyntax, "empty element"},
		{"foo[", "foo[", ErrSyntax, "mismatched brackets"},
		{"foo[1,3", "foo[1,3", ErrSyntax, "mismatched brackets"},
		{"foo[[1,3]", "foo[[1,3]", ErrSyntax, "mismatched brackets"},
		{"foo]", "foo]", ErrSyntax, "mismatched brackets"},
		{"foo[x-y]", "foo[x-y]", ErrSyntax, "invalid range 'x-y'"},
		{"foo[0-1,2--5]", "foo[0-1,2--5]", ErrSyntax, "invalid range '2--5'"},
		{"foo[0-1048576]", "foo[0-1048576]", ErrRange, "more than 1048576 hosts"},
		// Stricter than libhostlist.
		{"foo[1-]", "foo[1-]", ErrSyntax, "invalid range '1-'"},
		{"foo[-1]", "foo[-1]", ErrSyntax, "invalid range '-1'"},
		{"foo[ 1]", "foo[ 1]", ErrSyntax, "invalid range ' 1'"},
		{"foo[+1]", "foo[+1]", ErrSyntax, "invalid range '+1'"},
		{"foo[1x-3]", "foo[1x-3]", ErrSyntax, "invalid range '1x-3'"},
		{"foo[1]]", "foo[1]]", ErrSyntax, "mismatched brackets"},
		{"foo[1]x[", "foo[1]x[", ErrSyntax, "mismatched brackets"},
		{"a]b[1]", "a]b[1]", ErrSyntax, "mismatched brackets"},
		{"a,b]c,d", "b]c,d", ErrSyntax, "mismatched brackets"},
		{"foo[[1]]", "foo[[1]]", ErrSyntax, "invalid range '[1'"},
		// Other rules.
		{"foo[1,,2]", "foo[1,,2]", ErrSyntax, "empty element"},
		{"foo[,1]", "foo[,1]", ErrSyntax, "empty element"},
		{"foo[1,]", "foo[1,]", ErrSyntax, "empty element"},
		{"foo[3-1]", "foo[3-1]", ErrSyntax, "range '3-1' is decreasing"},
		{"foo[1-2-3]", "foo[1-2-3]", ErrSyntax, "invalid range '1-2-3'"},
		{"ok1,foo[99999999999999999999]", "foo[99999999999999999999]", ErrRange, "does not fit in 64 bits"},
		{"foo[1-99999999999999999999]", "foo[1-99999999999999999999]", ErrRange, "does not fit in 64 bits"},
		{"foo[18446744073709551615-0]", "foo[18446744073709551615-0]", ErrSyntax, "decreasing"},
		{"foo[0-18446744073709551615]", "foo[0-18446744073709551615]", ErrRange, "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			h, err := Parse(tt.in)
			require.Error(t, err)
			assert.Equal(t, 0, h.Len(), "failed Parse returns the empty list")
			assert.ErrorIs(t, err, tt.err)
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, tt.in, pe.Input)
			assert.Equal(t, tt.token, pe.Token)
			assert.Contains(t, pe.Reason, tt.reason)
			assert.Contains(t, err.Error(), tt.reason)
		})
	}
}

func TestParseLimits(t *testing.T) {
	_, err := Parse("foo[0-1048575]")
	require.NoError(t, err, "exactly 2^20 hosts is allowed")

	elems := make([]string, MaxBracketRanges)
	for i := range elems {
		elems[i] = strconv.Itoa(2 * i)
	}
	h, err := Parse("foo[" + strings.Join(elems, ",") + "]")
	require.NoError(t, err, "exactly 10240 ranges is allowed")
	assert.Equal(t, MaxBracketRanges, h.Len())

	_, err = Parse("foo[" + strings.Join(elems, ",") + ",99999]")
	assert.ErrorIs(t, err, ErrRange)
	assert.ErrorIs(t, err, syscall.ERANGE)
	assert.Contains(t, err.Error(), "more than 10240 ranges")
}

func TestParseErrorErrno(t *testing.T) {
	_, err := Parse("foo[")
	assert.ErrorIs(t, err, syscall.EINVAL)
	assert.NotErrorIs(t, err, syscall.ERANGE)
	_, err = Parse("foo[0-1048576]")
	assert.ErrorIs(t, err, syscall.ERANGE)
	assert.NotErrorIs(t, err, syscall.EINVAL)
	assert.NotErrorIs(t, err, syscall.ENOENT)
}

func TestParseErrorText(t *testing.T) {
	_, err := Parse("a,foo[3-1]")
	require.Error(t, err)
	assert.Equal(t, `hostlist: parsing "a,foo[3-1]": "foo[3-1]": range '3-1' is decreasing`, err.Error())

	_, err = Parse(strings.Repeat("x", 500) + "]")
	require.Error(t, err)
	assert.Less(t, len(err.Error()), 250, "long inputs are shortened in messages")

	assert.Equal(t, `hostlist: parsing "": "": hostlist: invalid syntax`, (&ParseError{Err: ErrSyntax}).Error())
}

func TestMustParse(t *testing.T) {
	assert.Equal(t, "foo[1-2]", MustParse("foo1,foo2").String())
	assert.Panics(t, func() { MustParse("foo[") })
}

func TestNth(t *testing.T) {
	var empty Hostlist
	_, ok := empty.Nth(0)
	assert.False(t, ok)

	h := MustParse("foo[1-2,4,5],bar")
	require.Equal(t, 5, h.Len())
	for i, want := range []string{"foo1", "foo2", "foo4", "foo5", "bar"} {
		got, ok := h.Nth(i)
		assert.True(t, ok)
		assert.Equal(t, want, got, "Nth(%d)", i)
	}
	_, ok = h.Nth(5)
	assert.False(t, ok)
	_, ok = h.Nth(-1)
	assert.False(t, ok)

	h = MustParse("a[1-3]x,b,c[08-10],d[1-2]y")
	all := hosts(h)
	for i, want := range all {
		got, ok := h.Nth(i)
		require.True(t, ok)
		require.Equal(t, want, got)
	}
}

func TestFind(t *testing.T) {
	// flux-core's find vectors.
	tests := []struct {
		in, host string
		want     int
	}{
		{"tst0", "tst", -1},
		{"tst0,tst", "tst", 1},
		{"tst,tst0", "tst", 0},
		{"tst", "tst0", -1},
		{"foo[1-5]-eth0", "foo3-eth0", 2},
		{"foo[1-5]", "foo3-eth0", -1},
		{"[0-5]", "3", 3},
		{"[0-5]i", "0", -1},
		{"i[0-5]", "i00", -1},
		{"i[00-05]", "i00", 0},
		{"i[00-05]", "i04", 4},
		{"f00[7-8]", "f007", 0},
		{"f00[7-8,10]", "f0010", 2},
		{"f0010001[07-08]", "f001000108", 1},
		{"cornp2", "corn", -1},
		{"cornp2", "corn2", -1},
		{"corn-p2", "corn2", -1},
		{"corn1-p2", "corn2", -1},
		// More.
		{"foo[08-12]", "foo9", -1},
		{"foo[08-12]", "foo09", 1},
		{"foo[08-12]", "foo010", -1},
		{"foo[08-12]", "foo10", 2},
		{"foo[9-10]", "foo10", 1},
		{"foo[9-10]", "foo09", -1},
		{"foo1,foo1", "foo1", 0},
		{"bar,foo[1-3],foo2", "foo2", 2},
		{"foo[1-3]", "foo", -1},
		{"foo[1-3]", "foo99999999999999999999999", -1},
		{"node[01-30]-[1-2,6]", "node07-[1-2,6]", 6},
		{"a[1-2]3", "a23", 1},
		{"", "foo", -1},
	}
	for _, tt := range tests {
		h := MustParse(tt.in)
		assert.Equal(t, tt.want, h.Find(tt.host), "Find(%q, %q)", tt.in, tt.host)
	}
}

func TestAppend(t *testing.T) {
	// flux-core's append test, with lists parsed then appended.
	h := Of("", "foo12")
	assert.Equal(t, 1, h.Len())
	h2 := h.AppendList(MustParse("foo[4,1-2]"))
	assert.Equal(t, 4, h2.Len())
	assert.Equal(t, "foo[12,4,1-2]", h2.String())
	h3 := h2.AppendList(MustParse("bar[26-30]"))
	assert.Equal(t, 9, h3.Len())
	assert.Equal(t, "foo[12,4,1-2],bar[26-30]", h3.String())
	assert.Equal(t, "foo12", h.String(), "receivers are never modified")
	assert.Equal(t, "foo[12,4,1-2]", h2.String(), "receivers are never modified")
	checkInvariants(t, h3)

	// Appending onto a list whose last range could grow must not leak
	// into other lists sharing the receiver.
	base := MustParse("n[1-3]")
	a := base.Append("n4")
	b := base.Append("n9")
	assert.Equal(t, "n[1-4]", a.String())
	assert.Equal(t, "n[1-3,9]", b.String())
	assert.Equal(t, "n[1-3]", base.String())

	assert.Equal(t, "x[1-4]", MustParse("x[1-2]").AppendList(MustParse("x[3-4]")).String())
	assert.Equal(t, "x[1-2]", MustParse("x[1-2]").AppendList(Hostlist{}).String())
	assert.Equal(t, "x[1-2]", Hostlist{}.AppendList(MustParse("x[1-2]")).String())

	// Append takes literal names, not expressions.
	lit := Of("foo[1-2]", "plain", "n01", "n02", "n3")
	assert.Equal(t, []string{"foo[1-2]", "plain", "n01", "n02", "n3"}, hosts(lit))
	assert.Equal(t, 5, lit.Len())
	assert.Equal(t, 0, lit.Find("foo[1-2]"))
	assert.True(t, Of().Len() == 0)
}

func TestBuilder(t *testing.T) {
	var b Builder
	assert.Equal(t, 0, b.Hostlist().Len())
	for i := range 1000 {
		b.Append(fmt.Sprintf("n%04d", i))
	}
	b.Append("login", "n1000")
	b.AppendList(MustParse("n[1001-1002]"))
	assert.Equal(t, 1004, b.Len())
	h := b.Hostlist()
	assert.Equal(t, "n[0000-0999],login,n[1000-1002]", h.String())
	checkInvariants(t, h)

	b.Append("n1003")
	assert.Equal(t, "n[0000-0999],login,n[1000-1002]", h.String(), "earlier result unaffected")
	assert.Equal(t, "n[0000-0999],login,n[1000-1003]", b.Hostlist().String())

	b.Reset()
	assert.Equal(t, 0, b.Len())
	assert.Equal(t, "", b.Hostlist().String())
}

func TestSortUniq(t *testing.T) {
	tests := []struct{ in, sorted, uniq string }{
		// flux-core's sort and uniq vectors.
		{"foo,f,bar,baz", "bar,baz,f,foo", "bar,baz,f,foo"},
		{"[5-6],[3-4],[1-2,0]", "[0-6]", "[0-6]"},
		{"[0-20],12,15", "[0-12,12-15,15-20]", "[0-20]"},
		{"0,1,2,3,4,5,1,5", "[0-1,1-5,5]", "[0-5]"},
		{"[0-20],45,12,15", "[0-12,12-15,15-20,45]", "[0-20,45]"},
		{"[0-20],45,12,015", "[0-12,12-20,45,015]", "[0-20,45,015]"},
		{"bar1,bar2,foo1,foo,foo", "bar[1-2],foo,foo,foo1", "bar[1-2],foo,foo1"},
		{"foo[5-6],foo3,foo4", "foo[3-6]", "foo[3-6]"},
		{"foo[5-6],foo[4-7]", "foo[4-5,5-6,6-7]", "foo[4-7]"},
		{"foo[0-3],foo[0-3]", "foo[0,0-1,1-2,2-3,3]", "foo[0-3]"},
		{"foo[0-2],foo[0-2],foo[0-2]", "foo[0,0,0-1,1,1-2,2,2]", "foo[0-2]"},
		// Digit-count ordering and joins across it.
		{"foo10,foo9", "foo[9-10]", "foo[9-10]"},
		{"foo10,foo09", "foo[09-10]", "foo[09-10]"},
		{"foo01,foo1", "foo[1,01]", "foo[1,01]"},
		{"foo100,foo05,foo7", "foo[7,05,100]", "foo[7,05,100]"},
		{"[9-10],05", "[9,05,10]", "[9,05,10]"},
		{"foo[1-100],foo[001-002]", "foo[1-99,001-002,100]", "foo[1-99,001-002,100]"},
		// Hosts from a suffix bracket sort by full name and stay single.
		{"foo[9-10]x,foo[1-2]x", "foo10x,foo1x,foo2x,foo9x", "foo10x,foo1x,foo2x,foo9x"},
		{"foo[1-2]x,foo1x", "foo1x,foo1x,foo2x", "foo1x,foo2x"},
		{"b1,a,b,a1", "a,a1,b,b1", "a,a1,b,b1"},
		{"foo[0-4]-eth2", "foo0-eth2,foo1-eth2,foo2-eth2,foo3-eth2,foo4-eth2", "foo0-eth2,foo1-eth2,foo2-eth2,foo3-eth2,foo4-eth2"},
		{"foo[1-2]x3,foo1x4", "foo1x[3-4],foo2x3", "foo1x[3-4],foo2x3"},
		// Sorting goes by name, so digits ending a prefix join the number.
		{"f00[7-8],f007", "f[007,007-008]", "f[007-008]"},
		{"node1[00-15]", "node[100-115]", "node[100-115]"},
		{"a[1-2]3,a13", "a[13,13,23]", "a[13,23]"},
		{"12[3-4],5", "[5,123-124]", "[5,123-124]"},
		// Digits beyond 64 bits: the names sort as names without a number.
		{"x9999999999999999999[1-2],x1", "x1,x99999999999999999991,x99999999999999999992", "x1,x99999999999999999991,x99999999999999999992"},
		{"x9999999999999999999[0000000000000000000001-2]", "x99999999999999999990000000000000000000001,x99999999999999999990000000000000000000002", "x99999999999999999990000000000000000000001,x99999999999999999990000000000000000000002"},
		{"x0000000000000000000[0000000000000000000001-2]", "x[00000000000000000000000000000000000000001-00000000000000000000000000000000000000002]", "x[00000000000000000000000000000000000000001-00000000000000000000000000000000000000002]"},
		{"x1[9-10]", "x[19,110]", "x[19,110]"},
		{"", "", ""},
		{"x", "x", "x"},
		{"foo[18446744073709551614-18446744073709551615],foo18446744073709551615", "foo[18446744073709551614-18446744073709551615,18446744073709551615]", "foo[18446744073709551614-18446744073709551615]"},
	}
	for _, tt := range tests {
		h := MustParse(tt.in)
		sorted, uniq := h.Sort(), h.Uniq()
		checkInvariants(t, sorted)
		checkInvariants(t, uniq)
		assert.Equal(t, tt.sorted, sorted.String(), "Sort(%q)", tt.in)
		assert.Equal(t, tt.uniq, uniq.String(), "Uniq(%q)", tt.in)
		assert.Equal(t, h.Len(), sorted.Len())
		assert.Equal(t, h.String(), MustParse(tt.in).String(), "Sort and Uniq leave the receiver alone")
	}

	big := MustParse("foo[0-1048575],foo[0-1048575]")
	assert.Equal(t, "foo[0-1048575]", big.Uniq().String())
	assert.Len(t, big.Uniq().ranges, 1, "uniq of large ranges stays compact")
}

func TestIterationEarlyExit(t *testing.T) {
	h := MustParse("a,b[1-5],c[1-2]x")
	var got []string
	for name := range h.All() {
		got = append(got, name)
		if len(got) == 3 {
			break
		}
	}
	assert.Equal(t, []string{"a", "b1", "b2"}, got)
	for range h.All() {
		break
	}
	got = got[:0]
	for name := range h.All() {
		got = append(got, name)
		if name == "c1x" {
			break
		}
	}
	assert.Equal(t, []string{"a", "b1", "b2", "b3", "b4", "b5", "c1x"}, got)
}

func TestTextMarshalling(t *testing.T) {
	type config struct {
		Nodes Hostlist `json:"nodes"`
		Spare Hostlist `json:"spare"`
	}
	in := config{Nodes: MustParse("node1,node2,node3,login")}
	data, err := json.Marshal(in)
	require.NoError(t, err)
	assert.JSONEq(t, `{"nodes":"node[1-3],login","spare":""}`, string(data))

	var out config
	require.NoError(t, json.Unmarshal(data, &out))
	assert.Equal(t, hosts(in.Nodes), hosts(out.Nodes))
	assert.Equal(t, 0, out.Spare.Len())

	before := out.Nodes
	err = json.Unmarshal([]byte(`{"nodes":"foo["}`), &out)
	assert.ErrorIs(t, err, ErrSyntax)
	assert.Equal(t, hosts(before), hosts(out.Nodes), "failed unmarshal leaves the value alone")

	b, err := MustParse("a[1-2]").AppendText([]byte("hosts="))
	require.NoError(t, err)
	assert.Equal(t, "hosts=a[1-2]", string(b))
}

func TestJoinWidth(t *testing.T) {
	tests := []struct {
		n      uint64
		wn     int
		m      uint64
		wm     int
		width  int
		joined bool
	}{
		{9, 1, 10, 2, 1, true},  // foo9,foo10
		{9, 2, 10, 2, 2, true},  // foo09,foo10
		{1, 2, 1, 1, 0, false},  // foo01,foo1
		{1, 3, 3, 1, 0, false},  // foo[001-002],foo3
		{5, 2, 100, 3, 2, true}, // foo05 ... foo100
		{5, 1, 6, 2, 0, false},  // foo5,foo06
		{10, 2, 11, 2, 2, true},
	}
	for _, tt := range tests {
		w, ok := joinWidth(tt.n, tt.wn, tt.m, tt.wm)
		assert.Equal(t, tt.joined, ok, "%+v", tt)
		if ok {
			assert.Equal(t, tt.width, w, "%+v", tt)
		}
	}
}

// TestConcurrentReads gives the race detector shared lists to watch: every
// method is a read of an immutable value.
func TestConcurrentReads(t *testing.T) {
	h := MustParse("login,node[01-64],gpu[1-8]-ib")
	want := hosts(h)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for range 50 {
				assert.Equal(t, want, hosts(h))
				_ = h.String()
				_ = h.Sort()
				_ = h.Uniq()
				_ = h.Append(fmt.Sprintf("node%02d", 65+g))
				_ = h.AppendList(h)
				assert.Equal(t, 1, h.Find("node01"))
			}
		})
	}
	wg.Wait()
	assert.Equal(t, want, hosts(h))
}
