package journal

import (
	"bytes"
	"fmt"
	"io"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func fmtAppend(b []byte, format string, args ...any) []byte { return fmt.Appendf(b, format, args...) }

func fmtS(format string, args ...any) string { return fmt.Sprintf(format, args...) }
