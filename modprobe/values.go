package modprobe

import (
	"fmt"
	"slices"
	"strconv"
)

// unknownKeyError is flux-core's "invalid config key KEY", with a hint.
type unknownKeyError struct {
	key  string
	hint string
}

func (e *unknownKeyError) Error() string {
	s := "invalid config key " + e.key
	if e.hint != "" {
		s += fmt.Sprintf(" (did you mean %q?)", e.hint)
	}
	return s
}

func newUnknownKey(key string, valid []string) error {
	return &unknownKeyError{key: key, hint: didYouMean(key, valid)}
}

// typeError names the key and the value that has the wrong type.
type typeError struct {
	key  string
	want string
	got  any
}

func (e *typeError) Error() string {
	return fmt.Sprintf("key %s: expected %s, got %s", e.key, e.want, describe(e.got))
}

func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return "string " + strconv.Quote(x)
	case bool:
		return "boolean " + strconv.FormatBool(x)
	case int64:
		return "integer " + strconv.FormatInt(x, 10)
	case float64:
		return "number " + strconv.FormatFloat(x, 'g', -1, 64)
	case []any:
		return "array"
	case map[string]any:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}

func asString(key string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", &typeError{key: key, want: "a string", got: v}
	}
	return s, nil
}

func asStrings(key string, v any) ([]string, error) {
	switch x := v.(type) {
	case []any:
		out := make([]string, 0, len(x))
		for _, item := range x {
			s, ok := item.(string)
			if !ok {
				return nil, &typeError{key: key, want: "an array of strings", got: v}
			}
			out = append(out, s)
		}
		return out, nil
	case []string:
		return slices.Clone(x), nil
	}
	return nil, &typeError{key: key, want: "an array of strings", got: v}
}

func asBool(key string, v any) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, &typeError{key: key, want: "a boolean", got: v}
	}
	return b, nil
}

func asInt(key string, v any) (int, error) {
	switch x := v.(type) {
	case int64:
		if x == int64(int(x)) {
			return int(x), nil
		}
	case int:
		return x, nil
	case float64: // broker config arrives as JSON
		if x == float64(int(x)) {
			return int(x), nil
		}
	}
	return 0, &typeError{key: key, want: "an integer", got: v}
}

// didYouMean suggests the closest of candidates to key, or "".
func didYouMean(key string, candidates []string) string {
	best, bestD := "", 3
	if len(key) > 8 {
		bestD = 4
	}
	for _, c := range candidates {
		d := editDistance(key, c)
		if d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
