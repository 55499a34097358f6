package fluxkit

import (
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// RFC 19 job ids in every encoding, as flux-core's
// src/common/libutil/test/fluid.c and libjob/test/job.c check them.
func TestJobIDVectors(t *testing.T) {
	for _, tc := range []struct {
		dec, hex, dothex, f58 string
		ts                    uint64
		gen, seq              uint32
	}{
		{"0", "0x0", "0000.0000.0000.0000", "ƒ1", 0, 0, 0},
		{"1", "0x1", "0000.0000.0000.0001", "ƒ2", 0, 0, 1},
		{"57", "0x39", "0000.0000.0000.0039", "ƒz", 0, 0, 57},
		{"65535", "0xffff", "0000.0000.0000.ffff", "ƒLUv", 0, 63, 1023},
		{"18446744073709551615", "0xffffffffffffffff", "ffff.ffff.ffff.ffff", "ƒjpXCZedGfVQ", 1<<40 - 1, 16383, 1023},
	} {
		id, err := ParseJobID(tc.dec)
		require.NoError(t, err)
		assert.Equal(t, tc.dec, id.Dec())
		assert.Equal(t, tc.hex, id.Hex())
		assert.Equal(t, tc.dothex, id.Dothex())
		assert.Equal(t, "job."+tc.dothex, id.KVS())
		assert.Equal(t, tc.f58, id.F58())
		assert.Equal(t, tc.f58, id.String())
		assert.Equal(t, "f"+tc.f58[len("ƒ"):], id.F58Plain())
		assert.Equal(t, tc.ts, id.Timestamp())
		assert.Equal(t, tc.gen, id.Generator())
		assert.Equal(t, tc.seq, id.Sequence())
		assert.Equal(t, id, NewJobID(tc.ts, tc.gen, tc.seq))
		for _, form := range []string{tc.hex, tc.dothex, "job." + tc.dothex, tc.f58, id.F58Plain(), " " + tc.dec + " \n"} {
			got, err := ParseJobID(form)
			if assert.NoError(t, err, form) {
				assert.Equal(t, id, got, form)
			}
		}
	}
}

func TestParseJobIDForms(t *testing.T) {
	for in, want := range map[string]JobID{
		"0.0.0.0039":              57,
		"f111":                    0,
		"ƒ111":                    0,
		"job.0000.0000.0000.0001": 1,
	} {
		got, err := ParseJobID(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", " ", "boo", "f", "f1230", "x1", "-1", "1x", "0x", "0xg", "+1",
		"1.2.3", "1.2.3.4.5", "10000.0.0.0", "fjpXCZedGfVR", "f1111111111111", "a-b--c", "\xf0\x9f\x98\x83", "1 2"} {
		_, err := ParseJobID(in)
		assert.ErrorIs(t, err, syscall.EINVAL, "%q", in)
	}
	_, err := ParseJobID("18446744073709551616")
	assert.ErrorIs(t, err, syscall.ERANGE)
	_, err = ParseJobID("0x10000000000000000")
	assert.ErrorIs(t, err, syscall.ERANGE)
}

func TestJobIDJSON(t *testing.T) {
	var v struct {
		ID JobID `json:"id"`
	}
	require.NoError(t, json.Unmarshal([]byte(`{"id":-1}`), &v))
	assert.Equal(t, JobIDAny, v.ID)
	b, err := json.Marshal(v)
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":-1}`, string(b))

	require.NoError(t, json.Unmarshal([]byte(`{"id":65535}`), &v))
	assert.Equal(t, JobID(65535), v.ID)
	require.NoError(t, json.Unmarshal([]byte(`{"id":"ƒLUv"}`), &v))
	assert.Equal(t, JobID(65535), v.ID)
	b, _ = json.Marshal(v)
	assert.JSONEq(t, `{"id":65535}`, string(b))
	for _, bad := range []string{`{"id":-2}`, `{"id":1.5}`, `{"id":"boo"}`, `{"id":true}`} {
		assert.Error(t, json.Unmarshal([]byte(bad), &v), bad)
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestJobIDGenerator(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	g, err := NewJobIDGenerator(JobIDGeneratorConfig{Generator: 3, Now: clk.now})
	require.NoError(t, err)
	var last JobID
	// 3000 ids within one millisecond: the sequence wraps and the timestamp
	// moves ahead of the clock, every id strictly greater than the last.
	for i := 0; i < 3000; i++ {
		id, err := g.Next()
		require.NoError(t, err)
		require.Equal(t, uint32(3), id.Generator())
		if i > 0 {
			require.Greater(t, id, last)
		}
		last = id
	}
	assert.Equal(t, uint64(2), last.Timestamp())
	assert.Equal(t, uint32(3000-2*1024-1), last.Sequence())

	// The clock jumps ahead: the timestamp follows and the sequence restarts.
	clk.t = clk.t.Add(time.Second)
	id, _ := g.Next()
	assert.Equal(t, uint64(1000), id.Timestamp())
	assert.Equal(t, uint32(0), id.Sequence())
	// The clock steps back: ids still increase.
	clk.t = clk.t.Add(-500 * time.Millisecond)
	id2, _ := g.Next()
	assert.Greater(t, id2, id)

	// A restarted generator continues after the largest id issued before.
	g2, err := NewJobIDGenerator(JobIDGeneratorConfig{Generator: 3, Now: clk.now, Epoch: time.Unix(1000, 0), After: NewJobID(5000, 3, 7)})
	require.NoError(t, err)
	id3, _ := g2.Next()
	assert.Equal(t, NewJobID(5000, 3, 8), id3)
	g3, _ := NewJobIDGenerator(JobIDGeneratorConfig{Generator: 1, Now: clk.now, Epoch: time.Unix(1000, 0), After: NewJobID(5000, 3, 7)})
	id4, _ := g3.Next()
	assert.Equal(t, NewJobID(5001, 1, 0), id4)

	// At its epoch, generator 0 skips id 0, which callers use for "none".
	g0, _ := NewJobIDGenerator(JobIDGeneratorConfig{Now: clk.now})
	first, _ := g0.Next()
	assert.Equal(t, JobID(1), first)

	bad := JobIDGeneratorConfig{Generator: MaxGenerator + 1}
	assert.EqualError(t, bad.Validate(), "job id generator 16384 exceeds 16383")
	_, err = NewJobIDGenerator(bad)
	assert.ErrorIs(t, err, syscall.EINVAL)
}

func FuzzParseJobID(f *testing.F) {
	for _, s := range []string{"0", "1", "57", "65535", "18446744073709551615", "0xffff", "ƒLUv", "fLUv",
		"0000.0000.0000.ffff", "job.0000.0000.0000.0001", "f111", "-1", "boo", " 12 ", "ƒjpXCZedGfVQ", "fjpXCZedGfVR"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseJobID(s)
		if err != nil {
			return
		}
		for _, enc := range []string{id.Dec(), id.Hex(), id.Dothex(), id.KVS(), id.F58(), id.F58Plain()} {
			back, err := ParseJobID(enc)
			require.NoError(t, err, "%q parsed to %d, whose encoding %q", s, id, enc)
			require.Equal(t, id, back, "%q parsed to %d, whose encoding %q", s, id, enc)
		}
	})
}

func ExampleParseJobID() {
	id, err := ParseJobID("ƒLUv")
	if err != nil {
		panic(err)
	}
	fmt.Println(id.Dec(), id.Hex(), id.Dothex(), id.F58Plain())
	fmt.Println(id.Timestamp(), id.Generator(), id.Sequence())
	// Output:
	// 65535 0xffff 0000.0000.0000.ffff fLUv
	// 0 63 1023
}

func ExampleJobID_MarshalJSON() {
	b, _ := json.Marshal(map[string]JobID{"id": JobIDAny})
	fmt.Println(string(b))
	// Output: {"id":-1}
}
