package fluxkit

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// JobID is an RFC 19 FLUID job identifier: a 40-bit millisecond timestamp,
// a 14-bit generator id and a 10-bit sequence number, in that order from the
// most significant bit.
type JobID uint64

// JobIDAny is FLUX_JOBID_ANY, which JSON carries as -1.
const JobIDAny JobID = math.MaxUint64

// FLUID field widths.
const (
	fluidTSBits  = 40
	fluidGenBits = 14
	fluidSeqBits = 10
	// MaxGenerator is the largest FLUID generator id.
	MaxGenerator = 1<<fluidGenBits - 1
	maxSeq       = 1<<fluidSeqBits - 1
	maxTS        = 1<<fluidTSBits - 1
)

// NewJobID assembles a JobID from its fields; out-of-range fields are masked.
func NewJobID(ts uint64, gen, seq uint32) JobID {
	return JobID((ts&maxTS)<<(fluidGenBits+fluidSeqBits) | uint64(gen&MaxGenerator)<<fluidSeqBits | uint64(seq&maxSeq))
}

// Timestamp is the id's milliseconds since the instance's epoch.
func (id JobID) Timestamp() uint64 { return uint64(id) >> (fluidGenBits + fluidSeqBits) }

// Generator is the id's generator field.
func (id JobID) Generator() uint32 { return uint32(uint64(id)>>fluidSeqBits) & MaxGenerator }

// Sequence is the id's sequence field.
func (id JobID) Sequence() uint32 { return uint32(id) & maxSeq }

// Dec is the decimal encoding.
func (id JobID) Dec() string { return strconv.FormatUint(uint64(id), 10) }

// Hex is the "0x" encoding, lowercase and unpadded.
func (id JobID) Hex() string { return "0x" + strconv.FormatUint(uint64(id), 16) }

// Dothex is the encoding as four zero-padded 16-bit groups, xxxx.xxxx.xxxx.xxxx.
func (id JobID) Dothex() string {
	const digits = "0123456789abcdef"
	var b [19]byte
	v := uint64(id)
	for i := 18; i >= 0; i-- {
		if i == 4 || i == 9 || i == 14 {
			b[i] = '.'
			continue
		}
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

// KVS is the KVS directory form, "job." followed by the dothex encoding.
func (id JobID) KVS() string { return "job." + id.Dothex() }

const f58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// f58Max is the most base58 digits a 64-bit id takes.
const f58Max = 11

func (id JobID) f58Digits() string {
	var b [f58Max]byte
	i := len(b)
	v := uint64(id)
	for {
		i--
		b[i] = f58Alphabet[v%58]
		v /= 58
		if v == 0 {
			break
		}
	}
	return string(b[i:])
}

// F58 is the base58 encoding with the "ƒ" (U+0192) prefix that Flux prints by
// default.
func (id JobID) F58() string { return "ƒ" + id.f58Digits() }

// F58Plain is the base58 encoding with an ASCII "f" prefix.
func (id JobID) F58Plain() string { return "f" + id.f58Digits() }

// String is the F58 encoding, as Flux prints job ids in logs and errors.
func (id JobID) String() string { return id.F58() }

// MarshalJSON encodes the id as a JSON integer; JobIDAny is -1, as flux-core
// packs ids signed.
func (id JobID) MarshalJSON() ([]byte, error) {
	if id == JobIDAny {
		return []byte("-1"), nil
	}
	return strconv.AppendUint(nil, uint64(id), 10), nil
}

// UnmarshalJSON accepts a JSON integer (-1 is JobIDAny) or a string in any
// form [ParseJobID] accepts.
func (id *JobID) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ParseJobID(s)
		if err != nil {
			return err
		}
		*id = v
		return nil
	}
	s := string(b)
	if s == "-1" {
		*id = JobIDAny
		return nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return Errorf(EINVAL, "invalid job id %s in JSON", s)
	}
	*id = JobID(v)
	return nil
}

// ParseJobID parses every RFC 19 encoding except words and emoji: decimal,
// "0x" hex, dothex, the "job." KVS form and f58 with a "ƒ" or "f" prefix.
// Leading and trailing whitespace is ignored. Errors match EINVAL, or ERANGE
// for a decimal or hex number above 2^64-1.
//
// Unlike flux-core, an f58 or dothex value that does not fit in 64 bits is an
// error rather than a silently wrapped id.
func ParseJobID(s string) (JobID, error) {
	in := s
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "job.")
	bad := func(why string) (JobID, error) {
		return 0, Errorf(EINVAL, "invalid job id %q: %s", in, why)
	}
	switch {
	case s == "":
		return bad("empty")
	case strings.Contains(s, "."):
		return parseDothex(s, bad)
	case strings.Contains(s, "-"):
		// flux-core sends anything with a dash to the mnemonic words
		// decoder, which is also why "-1" is not a valid id.
		return bad("mnemonic word ids are not supported")
	case strings.HasPrefix(s, "ƒ"):
		return parseF58(s[len("ƒ"):], bad)
	case s[0] == 'f':
		return parseF58(s[1:], bad)
	case strings.HasPrefix(s, "\xf0\x9f"):
		return bad("emoji ids are not supported")
	case strings.HasPrefix(s, "0x"):
		return parseUint(in, s[2:], 16, bad)
	default:
		return parseUint(in, s, 10, bad)
	}
}

// MustParseJobID is ParseJobID for constants in tests and examples; it
// panics on error.
func MustParseJobID(s string) JobID {
	id, err := ParseJobID(s)
	if err != nil {
		panic(err)
	}
	return id
}

func parseUint(in, s string, base int, bad func(string) (JobID, error)) (JobID, error) {
	if s == "" || s[0] == '+' || s[0] == '-' || strings.Contains(s, "_") {
		return bad("not a number")
	}
	v, err := strconv.ParseUint(s, base, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, Errorf(ERANGE, "invalid job id %q: out of range", in)
		}
		return bad("not a number")
	}
	return JobID(v), nil
}

func parseDothex(s string, bad func(string) (JobID, error)) (JobID, error) {
	groups := strings.Split(s, ".")
	if len(groups) != 4 {
		return bad("dothex needs four groups")
	}
	var v uint64
	for _, g := range groups {
		if g == "" || len(g) > 4 || g[0] == '+' || g[0] == '-' {
			return bad("bad dothex group")
		}
		n, err := strconv.ParseUint(g, 16, 16)
		if err != nil {
			return bad("bad dothex group")
		}
		v = v<<16 | n
	}
	return JobID(v), nil
}

func parseF58(s string, bad func(string) (JobID, error)) (JobID, error) {
	if s == "" {
		return bad("no f58 digits")
	}
	if utf8.RuneCountInString(s) > 12 {
		return bad("too many f58 digits")
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		d := strings.IndexByte(f58Alphabet, s[i])
		if d < 0 {
			return bad(fmt.Sprintf("%q is not an f58 digit", s[i]))
		}
		if v > (math.MaxUint64-uint64(d))/58 {
			return bad("f58 value exceeds 64 bits")
		}
		v = v*58 + uint64(d)
	}
	return JobID(v), nil
}

// JobIDGenerator issues FLUIDs. It is a plain value the caller drives: it
// starts no goroutine and reads time only through Now. It is not safe for
// concurrent use.
//
// Ids are strictly increasing. When 1024 ids have been issued within one
// millisecond, or the clock steps backwards, the generator moves its
// timestamp one millisecond ahead of the clock rather than sleep, as
// flux-core's does; the clock catches up as soon as issuing slows down.
type JobIDGenerator struct {
	epoch time.Time
	gen   uint32
	now   func() time.Time
	last  JobID
	used  bool
}

// JobIDGeneratorConfig configures a [JobIDGenerator].
type JobIDGeneratorConfig struct {
	// Generator is the FLUID generator id, 0 to MaxGenerator; job-ingest
	// uses its rank. Default 0.
	Generator uint32
	// Epoch is time zero of the timestamps; flux-core uses the instance's
	// start. Default: the zero time means Now() at construction.
	Epoch time.Time
	// After, when not zero, is the largest id issued before a restart;
	// every new id is greater. Default 0.
	After JobID
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Validate reports the first field that is out of range, naming it. It
// does not change c; NewJobIDGenerator calls it.
func (c *JobIDGeneratorConfig) Validate() error {
	if c.Generator > MaxGenerator {
		return Errorf(EINVAL, "job id generator %d exceeds %d", c.Generator, MaxGenerator)
	}
	return nil
}

// NewJobIDGenerator returns a generator. It calls cfg.Validate and refuses
// what it refuses.
func NewJobIDGenerator(cfg JobIDGeneratorConfig) (*JobIDGenerator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Epoch.IsZero() {
		cfg.Epoch = cfg.Now()
	}
	g := &JobIDGenerator{epoch: cfg.Epoch, gen: cfg.Generator, now: cfg.Now}
	if cfg.After != 0 {
		g.last, g.used = cfg.After, true
	}
	return g, nil
}

// Next issues the next id, never 0. It fails only when the 40-bit timestamp is
// exhausted, about 34 years after the epoch.
func (g *JobIDGenerator) Next() (JobID, error) {
	ms := g.now().Sub(g.epoch).Milliseconds()
	if ms < 0 {
		ms = 0
	}
	ts, seq := uint64(ms), uint32(0)
	if g.used {
		lts := g.last.Timestamp()
		switch {
		case ts < lts:
			ts = lts
			fallthrough
		case ts == lts:
			if g.last.Generator() == g.gen && g.last.Sequence() < maxSeq {
				seq = g.last.Sequence() + 1
			} else if g.last.Generator() < g.gen {
				seq = 0
			} else {
				ts++
			}
		}
	}
	if ts > maxTS {
		return 0, Errorf(EOVERFLOW, "job id timestamp exhausted")
	}
	if ts == 0 && g.gen == 0 && seq == 0 {
		// 0 is a valid FLUID, but callers use it for "no job"; the
		// first generator at its epoch starts at 1 instead.
		seq = 1
	}
	id := NewJobID(ts, g.gen, seq)
	g.last, g.used = id, true
	return id, nil
}
