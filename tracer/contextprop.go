package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/offsetdb/offsetdb/tracer/propagation"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// contextProp is the trace-context setup every traced process shares: the
// sampler, the propagators, and the socket-layer writer of outgoing
// traceparent headers (nil when off or refused by the kernel).
type contextProp struct {
	constants map[string]any
	writer    *propagation.Writer
}

// contextSettings reads OTEL_TRACES_SAMPLER(_ARG) and OTEL_PROPAGATORS.
func contextSettings() (propagation.Sampler, propagation.Propagators, error) {
	sampler, err := propagation.ParseSampler(os.Getenv("OTEL_TRACES_SAMPLER"), os.Getenv("OTEL_TRACES_SAMPLER_ARG"))
	if err != nil {
		return sampler, propagation.Propagators{}, err
	}
	props, err := propagation.ParsePropagators(os.Getenv("OTEL_PROPAGATORS"))
	return sampler, props, err
}

// newContextProp reads OTEL_PROPAGATORS and OTEL_TRACES_SAMPLER(_ARG) and,
// when write is set and tracecontext propagates, starts the writer. A
// kernel that refuses the writer leaves tracing read-only, with a warning
// that says why; a bad setting is an error naming it.
func newContextProp(write bool, cgroupRoot string, log *slog.Logger) (*contextProp, error) {
	sampler, props, err := contextSettings()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadSetting, err)
	}
	if len(props.Ignored) > 0 {
		log.Warn("propagators not implemented by this tracer are ignored", "OTEL_PROPAGATORS", os.Getenv("OTEL_PROPAGATORS"), "ignored", strings.Join(props.Ignored, ","))
	}
	c := &contextProp{constants: propagation.Constants(sampler, props)}
	switch {
	case !props.TraceContext:
		log.Info("trace context off: OTEL_PROPAGATORS has no tracecontext; every server span starts a trace, and outgoing requests and Kafka records are sent unchanged")
	case !write:
		log.Info("writing trace context off (--context-propagation=false): incoming traceparent headers are continued; outgoing requests and Kafka records are sent unchanged")
	default:
		root, err := cgroupRoot, error(nil)
		if root == "" {
			root, err = propagation.CgroupRoot()
		}
		if err == nil {
			c.writer, err = propagation.Start(root)
		}
		if err != nil {
			log.Warn("outgoing requests will carry no traceparent: the socket-layer writer could not start; tracing stays read-only",
				"err", err, "fix", "run as root (or with CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN) with a cgroup v2 hierarchy mounted (--cgroup-root), or --context-propagation=false to silence this")
			break
		}
		c.constants[propagation.ContextWriterConst] = uint8(1)
		log.Debug("trace-context writer attached", "cgroup", root)
	}
	switch sampler.Name {
	case "parentbased_always_on":
	case "traceidratio", "parentbased_traceidratio":
		log.Info("sampler", "OTEL_TRACES_SAMPLER", sampler.Name, "OTEL_TRACES_SAMPLER_ARG", sampler.Ratio)
	default:
		log.Info("sampler", "OTEL_TRACES_SAMPLER", sampler.Name)
	}
	return c, nil
}

// apply sets what every traced process's BPF objects need.
func (c *contextProp) apply(o *uprobe.Options) {
	if c == nil {
		return
	}
	o.Constants = c.constants
	if c.writer != nil {
		o.Shared = c.writer.Maps()
	}
}

// adopt hands the writer the connections process pid opened before the
// tracer started (see propagation.Writer.Adopt); a failure costs only
// those connections' trace context, and is logged.
func (c *contextProp) adopt(pid int, log *slog.Logger) {
	if c == nil || c.writer == nil {
		return
	}
	n, err := c.writer.Adopt(pid)
	if err != nil {
		log.Warn("connections opened before the tracer started will carry no trace context", "pid", pid, "err", err)
		return
	}
	if n > 0 {
		log.Debug("adopted existing connections for trace context", "pid", pid, "sockets", n)
	}
}

// close detaches the writer and logs what became of outgoing requests'
// trace context.
func (c *contextProp) close(log *slog.Logger) {
	if c == nil || c.writer == nil {
		return
	}
	if st, err := c.writer.Stats(); err != nil {
		log.Warn("trace-context counters", "err", err)
	} else {
		log.Info("outgoing trace context", "written", st.Written, "written_http2", st.H2Written, "application_set", st.AppSet, "not_written", st.NotWritten(),
			"tls", st.TLS, "stale", st.Stale, "line_too_long", st.LineTooLong, "not_http1", st.NotHTTP1, "write_failed", st.WriteFailed, "http2_not_written", st.H2NotWritten, "missed", st.Missed,
			"kafka_written", st.KafkaWritten, "kafka_application_set", st.KafkaAppSet, "kafka_unmatched", st.KafkaUnmatched,
			"kafka_unsupported", st.KafkaUnsupported, "kafka_too_large", st.KafkaTooLarge, "kafka_write_failed", st.KafkaWriteFailed)
	}
	if err := c.writer.Close(); err != nil {
		log.Warn("detach the trace-context writer", "err", err)
	}
}
