// Package loopback gives tests free TCP ports on 127.0.0.1.
//
// A port found by listening on port 0 and closing the listener is free only
// until someone else takes it, and Linux hands the same one out again at
// once: two calls in a row could return one port, and a cluster test would
// then list one route twice. Port never returns a port it returned before
// in this process, so the ports one test asks for are distinct.
package loopback

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// Port returns a TCP port on 127.0.0.1 that was free a moment ago and that
// no earlier call in this process returned.
func Port(t testing.TB) int {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	for range 1000 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free loopback port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			t.Fatalf("find a free loopback port: %v", err)
		}
		if !given[port] {
			given[port] = true
			return port
		}
	}
	t.Fatal("find a free loopback port: 1000 tries gave only ports handed out before")
	return 0
}

// Ports returns n distinct ports, as Port.
func Ports(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = Port(t)
	}
	return ports
}

// Addr returns "127.0.0.1:PORT" for a port from Port.
func Addr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(Port(t)))
}
