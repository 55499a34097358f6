//go:build !linux

package curve

import (
	"net"
	"time"
)

// setUserTimeout is Linux's TCP_USER_TIMEOUT; elsewhere the system's
// retransmission limits apply.
func setUserTimeout(net.Conn, time.Duration) error { return nil }

func userTimeout(net.Conn) time.Duration { return 0 }
