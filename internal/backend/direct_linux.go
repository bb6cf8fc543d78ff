package backend

import (
	"net"
	"syscall"
)

const canCheckIdle = true

// idleAlive reports whether an idle connection is still open and has
// nothing to read: a peek that does not wait sees the peer's close (or
// stray bytes) before a request is written to a dead connection.
func idleAlive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = rerr == syscall.EAGAIN
		return true // never wait
	})
	return err == nil && alive
}
