package export

import (
	"errors"
	"regexp"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// outcome is what one failed or partly failed export means for its spans.
type outcome struct {
	rejected int  // spans the collector refused for good
	retry    bool // the rest should be sent again
}

// The OTLP exporters report these as text only: their error types are
// internal. The fault tests (processor_test.go) run the real exporters
// against a real receiver, so a change of wording fails them.
var (
	// partialSuccess is internal.PartialSuccess.Error() of both OTLP
	// exporters: "OTLP partial success: MSG (N spans rejected)".
	partialSuccess = regexp.MustCompile(`OTLP partial success: .*\((\d+) spans rejected\)`)
	// httpStatus is the OTLP/HTTP exporter's error for a status it does not
	// retry: "failed to send to URL: 400 Bad Request (body: ...)".
	httpStatus = regexp.MustCompile(`failed to send to \S+: (\d{3})\b`)
)

// classify says what err, returned by an exporter for a batch of n spans
// after the exporter's own retries, means for those spans.
//
// A partial success rejects the spans it counts and accepts the rest. A
// status the collector will answer again the same way (OTLP/HTTP: anything
// but 429, 502, 503, 504; gRPC: InvalidArgument, Unauthenticated, ...)
// rejects the batch. Anything else — connection refused or reset, a
// timeout, a retryable status the exporter gave up on — is worth sending
// again: the collector may be back later.
func classify(err error, n int) outcome {
	msg := err.Error()
	if m := partialSuccess.FindStringSubmatch(msg); m != nil {
		k, _ := strconv.Atoi(m[1])
		return outcome{rejected: min(k, n)}
	}
	if m := httpStatus.FindStringSubmatch(msg); m != nil {
		switch m[1] {
		case "429", "502", "503", "504":
			return outcome{retry: true}
		}
		return outcome{rejected: n}
	}
	var grpcErr interface{ GRPCStatus() *status.Status }
	if errors.As(err, &grpcErr) {
		switch grpcErr.GRPCStatus().Code() {
		case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.PermissionDenied,
			codes.FailedPrecondition, codes.Unimplemented, codes.Internal, codes.Unauthenticated:
			return outcome{rejected: n}
		}
	}
	return outcome{retry: true}
}
