//go:build !linux

package backend

import "net"

// Elsewhere raw calls use net/http's Transport.
const canCheckIdle = false

func idleAlive(net.Conn) bool { return false }
