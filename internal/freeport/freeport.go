// Package freeport picks loopback TCP ports for tests that start a server
// on a port, stop it and start it again on the same port.
//
// A port the kernel hands out for "127.0.0.1:0" comes from its ephemeral
// range, which it also uses for the local end of every outgoing
// connection: between a stop and a restart, any connection made by any
// process on the machine can take the port. Ports below that range are
// never handed out on their own, so this package picks one there at random
// and checks that it is free; only another process picking the same
// number, or a server configured for it, can then take it.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowest is the lowest port Pick chooses: well above the ports of common
// services.
const lowest = 20000

// rangeFile holds the kernel's ephemeral port range ("low high").
var rangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

// Pick returns a port on 127.0.0.1 that was free a moment ago, chosen at
// random from [20000, start of the ephemeral range). When that range
// cannot be read or leaves fewer than 1,000 ports, or 50 picks were all
// taken, it returns a port the kernel chooses (":0"). Safe for concurrent
// use.
func Pick() (int, error) {
	if high, ok := ephemeralLow(); ok && high-lowest >= 1000 {
		for i := 0; i < 50; i++ {
			port := lowest + rand.IntN(high-lowest)
			if free(port) {
				return port, nil
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("freeport: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr is Pick as a "127.0.0.1:port" address.
func Addr() (string, error) {
	port, err := Pick()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// ephemeralLow returns the first port of the kernel's ephemeral range.
func ephemeralLow() (int, bool) {
	b, err := os.ReadFile(rangeFile)
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	low, err := strconv.Atoi(f[0])
	return low, err == nil
}

// free reports whether port can be listened on at 127.0.0.1 now.
func free(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
