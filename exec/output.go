package exec

import (
	"encoding/base64"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Stream numbers of captured output.
const (
	streamStdout = 0
	streamStderr = 1
)

var streamNames = [2]string{"stdout", "stderr"}

// Output capture: a shell writes its stdout and stderr to files in its
// record (see record.go), from the first byte, without ever blocking on
// the agent. The agent reads them and sends each piece to the coordinator
// at its byte offset; the coordinator logs it in the exec eventlog and
// answers with the offset it has stored up to, which is where the agent
// goes on: ahead of it after an agent restart (the bytes are there
// already), behind it after a fresh start re-sent without reattach (the
// new eventlog has none). The files are the durable copy until the job is
// forgotten, so nothing acknowledged is ever needed again and nothing
// unacknowledged is ever lost. Memory is bounded by the chunk size; the
// disk holds what the shell writes.

// completeRunes drops an incomplete UTF-8 sequence at the end of data, to
// be sent with the bytes that complete it, so that text split across
// writes stays text in the eventlog.
func completeRunes(data []byte) []byte {
	for i := len(data) - 1; i >= 0 && i >= len(data)-utf8.UTFMax; i-- {
		if utf8.RuneStart(data[i]) {
			if !utf8.FullRune(data[i:]) {
				return data[:i]
			}
			break
		}
	}
	return data
}

// logData puts data into a log event's context: as a string when it is
// UTF-8, else base64-encoded with "encoding":"base64", as RFC 24 output
// events carry binary data. JSON strings cannot hold invalid UTF-8.
func logData(ctx map[string]any, data []byte) {
	if utf8.Valid(data) {
		ctx["data"] = string(data)
		return
	}
	ctx["data"] = base64.StdEncoding.EncodeToString(data)
	ctx["encoding"] = "base64"
}

// logBytes is the inverse of logData: the bytes a log event carries.
func logBytes(ctx map[string]any) ([]byte, error) {
	d, ok := ctx["data"].(string)
	if !ok {
		return nil, errors.New("log event without data")
	}
	switch enc, _ := ctx["encoding"].(string); enc {
	case "":
		return []byte(d), nil
	case "base64":
		return base64.StdEncoding.DecodeString(d)
	default:
		return nil, fmt.Errorf("log event with unknown encoding %q", enc)
	}
}
