package fluxkit

import (
	"context"
	"errors"
	"fmt"
	"syscall"
)

// Errnos that cross the wire often enough to deserve short names. They are
// syscall.Errno values, so errors.Is(err, syscall.ENOENT) and
// errors.Is(err, fluxkit.ENOENT) are the same test.
const (
	EPERM        = syscall.EPERM
	ENOENT       = syscall.ENOENT
	EINVAL       = syscall.EINVAL
	EEXIST       = syscall.EEXIST
	EBUSY        = syscall.EBUSY
	ENOSYS       = syscall.ENOSYS
	ENODATA      = syscall.ENODATA
	EPROTO       = syscall.EPROTO
	ECANCELED    = syscall.ECANCELED
	ETIMEDOUT    = syscall.ETIMEDOUT
	EHOSTUNREACH = syscall.EHOSTUNREACH
	ECONNRESET   = syscall.ECONNRESET
	EAGAIN       = syscall.EAGAIN
	ERANGE       = syscall.ERANGE
	EOVERFLOW    = syscall.EOVERFLOW
	ENOSPC       = syscall.ENOSPC
)

// Texts flux-core uses for common refusals.
const (
	// TextOwnerRequired is the RFC 6 error text of a request refused for
	// lack of the owner role.
	TextOwnerRequired = "Request requires owner credentials"
)

// Error is an RFC 6 error response: a POSIX errno and an optional
// human-readable text. It matches its errno with errors.Is.
type Error struct {
	Errnum syscall.Errno
	Text   string
}

// Errorf returns an *Error with the given errno and formatted text.
func Errorf(errnum syscall.Errno, format string, args ...any) *Error {
	return &Error{Errnum: errnum, Text: fmt.Sprintf(format, args...)}
}

// Error returns the text, or the errno's description when there is none,
// in glibc's words as flux_strerror gives them.
func (e *Error) Error() string {
	if e.Text != "" {
		return e.Text
	}
	return Strerror(e.Errnum)
}

// Strerror describes errnum in glibc's words ("No such file or
// directory"), as flux-core's tools print errors. Go's own descriptions
// are glibc's with the first letter lowered.
func Strerror(errnum syscall.Errno) string {
	s := errnum.Error()
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

// Unwrap exposes the errno, so errors.Is(err, syscall.ENOENT) works.
func (e *Error) Unwrap() error { return e.Errnum }

// Is reports whether target is an *Error with the same errno, so that
// errors.Is(err, ErrProto) matches any EPROTO error whatever its text.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Errnum == e.Errnum
}

// Errno extracts the errno to put in an error response for err. An *Error or
// a syscall.Errno anywhere in the chain gives its errno; context
// cancellation gives ECANCELED and deadlines ETIMEDOUT; anything else EINVAL,
// flux-core's usual default for a request it cannot satisfy.
func Errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Errnum
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	switch {
	case errors.Is(err, context.Canceled):
		return ECANCELED
	case errors.Is(err, context.DeadlineExceeded):
		return ETIMEDOUT
	}
	return EINVAL
}

// ErrorText is the text to put in an error response for err: the *Error's
// text when the chain holds one and nothing was added around it, else the
// whole message, unless that message is just the errno's own description.
func ErrorText(err error) string {
	if err == nil {
		return ""
	}
	var fe *Error
	if errors.As(err, &fe) && fe.Error() == err.Error() {
		return fe.Text
	}
	var en syscall.Errno
	if errors.As(err, &en) && en.Error() == err.Error() {
		return ""
	}
	return err.Error()
}

// ErrorResponse builds the error response to req for err, as
// [Responder.RespondError] sends it: the errno of err ([Errno]; EINVAL when
// err carries none) and its [ErrorText] as payload.
func ErrorResponse(req *Message, err error) *Message {
	var text []byte
	if t := ErrorText(err); t != "" {
		text = []byte(t)
	}
	errno := Errno(err)
	if errno == 0 {
		errno = EINVAL
	}
	return ResponseTo(req, text, uint32(errno))
}

// ErrorFromResponse converts an error response into an *Error: errnum and the
// payload (its trailing NUL already stripped) as text. It returns nil for a
// successful response.
func ErrorFromResponse(m *Message) error {
	if m.Errnum == 0 {
		return nil
	}
	return &Error{Errnum: syscall.Errno(m.Errnum), Text: string(m.Payload)}
}
