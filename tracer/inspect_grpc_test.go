package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/grpc/grpctest"
)

// TestInspectShowsEachProbeAndWhyItIsSkipped runs `tracer inspect --json`
// on grpc-go services of two eras and checks, per instrumentation, which
// probes attach and that a probe bound to other versions says which
// versions it needs and which the binary has.
func TestInspectShowsEachProbeAndWhyItIsSkipped(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds grpc-go services with toolchains from the module proxy")
	}
	for _, tt := range []struct {
		target   grpctest.Target
		attached []string // symbol (bound) of the probes that attach
	}{
		{grpctest.Matrix[0], []string{ // v1.0.0
			"google.golang.org/grpc.(*Server).handleStream",
			"google.golang.org/grpc/transport.(*http2Server).operateHeaders (<v1.14.0)",
			"google.golang.org/grpc/transport.(*http2Server).WriteStatus (<v1.3.0)",
			"google.golang.org/grpc.Invoke (<v1.8.0)",
			"google.golang.org/grpc.NewClientStream (<v1.8.0)",
			"google.golang.org/grpc.(*clientStream).finish",
		}},
		{grpctest.Matrix[len(grpctest.Matrix)-2], []string{ // v1.73.0
			"google.golang.org/grpc.(*Server).handleStream",
			"google.golang.org/grpc/internal/transport.(*http2Server).operateHeaders (>=v1.60.0)",
			"google.golang.org/grpc/internal/transport.(*http2Server).writeStatus (>=v1.69.0)",
			"google.golang.org/grpc.(*ClientConn).Invoke (>=v1.8.0)",
			"google.golang.org/grpc.(*ClientConn).NewStream (>=v1.8.0)",
			"google.golang.org/grpc.(*clientStream).finish",
			"google.golang.org/grpc/internal/transport.(*http2Client).createHeaderFields (>=v1.14.0)",
			"google.golang.org/grpc/internal/transport.(*loopyWriter).writeHeader (>=v1.14.0)",
		}},
	} {
		t.Run(tt.target.String(), func(t *testing.T) {
			bin := tt.target.Build(t)
			out, err := exec.Command(tracerBinary(t), "inspect", "--json", bin).Output()
			require.NoError(t, err)
			var in inspection
			require.NoError(t, json.Unmarshal(out, &in))
			var attached []string
			seen := 0
			for _, ii := range in.Instrumentations {
				if !strings.HasPrefix(ii.Name, "gRPC") {
					continue
				}
				seen++
				assert.True(t, ii.Enabled, "%s: %s", ii.Name, ii.Reason)
				for _, p := range ii.Probes {
					name := p.Symbol
					if p.Versions != "" {
						name += " (" + p.Versions + ")"
					}
					switch p.Status {
					case "attached":
						attached = append(attached, name)
					case "skipped":
						assert.Regexp(t, `^needs google\.golang\.org/grpc .+; the binary has `+strings.ReplaceAll(tt.target.GRPC, ".", `\.`)+`$`, p.Reason, name)
					default:
						t.Errorf("%s: status %s: %s", name, p.Status, p.Reason)
					}
				}
			}
			assert.Equal(t, 2, seen, "gRPC server and client")
			assert.ElementsMatch(t, tt.attached, attached)
		})
	}
}
