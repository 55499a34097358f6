package modprobe

import (
	"encoding/json"
	"testing"

	"github.com/fluxkit/fluxkit/idset"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRankConditionsMatchAndRoundTrip(t *testing.T) {
	tests := []struct {
		in, str string
		match   []uint32
		miss    []uint32
	}{
		{"all", "all", []uint32{0, 1, idset.MaxID}, nil},
		{">0", ">0", []uint32{1, 2, idset.MaxID}, []uint32{0}},
		{"<2", "<2", []uint32{0, 1}, []uint32{2, 3}},
		{">+3", ">3", []uint32{4}, []uint32{3}},
		{"<-1", "<-1", nil, []uint32{0, 1}},
		{">-1", ">-1", []uint32{0, idset.MaxID}, nil},
		{"<0", "<0", nil, []uint32{0}},
		{">4294967295", ">4294967295", nil, []uint32{idset.MaxID, 1<<32 - 1}},
		{"<4294967296", "<4294967296", []uint32{1<<32 - 1}, nil},
		{"0", "0", []uint32{0}, []uint32{1}},
		{"0,1,2", "0-2", []uint32{0, 1, 2}, []uint32{3}},
		{"0,5,7", "0,5,7", []uint32{0, 5, 7}, []uint32{1, 6}},
		{"[0-3,5]", "0-3,5", []uint32{2, 5}, []uint32{4, 6}},
		{"", "", nil, []uint32{0, 1}},
		{"[]", "", nil, []uint32{0}},
	}
	for _, tt := range tests {
		r, err := ParseRanks(tt.in)
		require.NoError(t, err, "%q", tt.in)
		assert.Equal(t, tt.str, r.String(), "%q", tt.in)
		for _, rank := range tt.match {
			assert.True(t, r.Contains(rank), "%q should match %d", tt.in, rank)
		}
		for _, rank := range tt.miss {
			assert.False(t, r.Contains(rank), "%q should not match %d", tt.in, rank)
		}
		again, err := ParseRanks(r.String())
		require.NoError(t, err)
		assert.Equal(t, r, again, "String round-trips %q", tt.in)
	}
}

func TestZeroRanksIsAll(t *testing.T) {
	var zero Ranks
	assert.Equal(t, "all", zero.String())
	assert.True(t, zero.Contains(0))
	assert.True(t, zero.Contains(1<<32-1))
	assert.Equal(t, zero, MustParseRanks("all"))
	assert.NotEqual(t, zero, MustParseRanks(""), "the empty idset is not the default")
}

func TestBadRankConditionsGetFluxCoreTexts(t *testing.T) {
	for _, in := range []string{">", "<", ">=1", "<=1", ">x", "> 1", ">1 ", ">1_000", ">0x10", ">1.5", "=1", "!1", "ALL", "All", "all ", " 0", "3-3", "1,0"} {
		_, err := ParseRanks(in)
		require.Error(t, err, "%q", in)
	}
	for in, want := range map[string]string{
		"=0":  "ranks: invalid idset: =0",
		"ALL": "ranks: invalid idset: ALL",
		">":   "invalid literal for int() with base 10: ''",
		"<1x": "invalid literal for int() with base 10: '1x'",
		">=1": "invalid literal for int() with base 10: '=1'",
	} {
		_, err := ParseRanks(in)
		assert.EqualError(t, err, want, in)
	}

	_, err := ParseRanks("1,0")
	assert.ErrorIs(t, err, idset.ErrOrder)
	var pe *idset.ParseError
	assert.ErrorAs(t, err, &pe, "the idset's own error stays reachable")

	_, err = ParseRanks(">=1")
	assert.ErrorIs(t, err, idset.ErrSyntax)
	_, err = ParseRanks(">99999999999999999999")
	assert.ErrorIs(t, err, idset.ErrRange)

	assert.Panics(t, func() { MustParseRanks(">") })
}

func TestRanksAsJSONText(t *testing.T) {
	type config struct {
		Cond Ranks `json:"cond"`
		Def  Ranks `json:"def"`
	}
	data, err := json.Marshal(config{Cond: MustParseRanks(">0")})
	require.NoError(t, err)
	assert.JSONEq(t, `{"cond":">0","def":"all"}`, string(data))

	var out config
	require.NoError(t, json.Unmarshal(data, &out))
	assert.Equal(t, ">0", out.Cond.String())
	assert.Equal(t, Ranks{}, out.Def)

	var r Ranks
	require.NoError(t, r.UnmarshalText([]byte("<5")))
	assert.Error(t, r.UnmarshalText([]byte(">>5")))
	assert.Equal(t, "<5", r.String(), "a failed unmarshal leaves the value alone")
}
