//go:build !linux

package target

import "net"

// sendQueue cannot tell what conn has left to send on this system.
func sendQueue(net.Conn) (int, bool) { return 0, false }
