//go:build linux

package curve

import (
	"net"
	"syscall"
	"time"
)

// tcpUserTimeout is TCP_USER_TIMEOUT from linux/tcp.h, which package
// syscall does not define.
const tcpUserTimeout = 0x12

// setUserTimeout bounds how long data sent on c may stay unacknowledged
// before the kernel drops the connection: what tells a dead peer host from
// a quiet one (libzmq's ZMQ_TCP_MAXRT).
func setUserTimeout(c net.Conn, d time.Duration) error {
	tc, ok := c.(*net.TCPConn)
	if !ok || d <= 0 {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, int(d.Milliseconds()))
	}); err != nil {
		return err
	}
	return serr
}

// userTimeout reads c's TCP_USER_TIMEOUT (zero: the system's default).
func userTimeout(c net.Conn) time.Duration {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return 0
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0
	}
	var ms int
	_ = rc.Control(func(fd uintptr) {
		ms, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout)
	})
	return time.Duration(ms) * time.Millisecond
}
