// Command bigservice is the example service linked with many large
// packages, so that offset resolution can be measured on a big binary (its
// DWARF is what a real service's looks like, not a toy's).
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"

	_ "github.com/cilium/ebpf/link"
	_ "go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	_ "go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	_ "go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	_ "go.opentelemetry.io/otel/sdk/trace"
	_ "golang.org/x/arch/arm64/arm64asm"
	_ "golang.org/x/arch/x86/x86asm"
	_ "google.golang.org/grpc"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	fmt.Printf("listening on %s\n", ln.Addr())
	http.Serve(ln, mux)
}
