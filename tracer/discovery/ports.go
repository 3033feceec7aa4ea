package discovery

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ListeningPorts returns the TCP ports (IPv4 and IPv6) process pid listens
// on: the LISTEN sockets of its network namespace (/proc/PID/net/tcp,
// tcp6) whose inodes are among its open files (/proc/PID/fd).
func ListeningPorts(pid int) ([]int, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	fds, err := os.ReadDir(dir + "/fd")
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(dir + "/fd/" + fd.Name())
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	if len(inodes) == 0 {
		return nil, nil
	}
	seen := map[int]bool{}
	var ports []int
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(dir + "/net/" + table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] {
				continue
			}
			_, portHex, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			port, err := strconv.ParseUint(portHex, 16, 16)
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s/net/%s: port %q: %w", dir, table, portHex, err)
			}
			if !seen[int(port)] {
				seen[int(port)] = true
				ports = append(ports, int(port))
			}
		}
		f.Close()
	}
	return ports, nil
}
