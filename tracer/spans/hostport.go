package spans

import (
	"net"
	"strconv"
	"strings"
)

// SplitHostPort splits "host:port", "[v6]:port", "host" or "[v6]" into the
// host without brackets and the port, 0 when absent or not a valid port:
// what server.address/server.port and client.address/client.port hold.
func SplitHostPort(hostport string) (string, int) {
	if hostport == "" {
		return "", 0
	}
	host, portText, err := net.SplitHostPort(hostport)
	if err != nil {
		return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), 0
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port <= 0 || port > 65535 {
		return host, 0
	}
	return host, port
}
