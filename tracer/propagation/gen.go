package propagation

// The BPF object, compiled for both targets and committed, comes from
// writer.c and bpf/propagation.h; the build needs clang and libbpf-dev.
// crc32c_table.h, which writer.c includes, is generated first.
//go:generate sh -c "go run ./crc32cgen > crc32c_table.h"
//go:generate go tool bpf2go -tags linux -target amd64,arm64 writer writer.c -- -I../../bpf -O2 -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu
//go:generate go tool bpf2go -tags linux -target amd64,arm64 adopt adopt.c -- -I../../bpf -O2 -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu
