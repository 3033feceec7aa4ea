package propagation

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The sampler codes of bpf/context.h (`volatile const __u8 sampler`).
const (
	samplerParentBasedAlwaysOn uint8 = iota
	samplerParentBasedAlwaysOff
	samplerParentBasedTraceIDRatio
	samplerAlwaysOn
	samplerAlwaysOff
	samplerTraceIDRatio
)

// The BPF constants Config sets (uprobe.Options.Constants).
const (
	SamplerConst      = "sampler"
	SamplerBoundConst = "sampler_bound"
	TraceContextConst = "propagate_tracecontext"
)

// ErrInvalidConfig wraps every error of ParseSampler and ParsePropagators.
var ErrInvalidConfig = errors.New("trace context setting")

// Sampler is an OTEL_TRACES_SAMPLER setting, applied by the BPF programs
// when a span starts (bpf/context.h), so the trace-flags a span propagates
// carry the decision.
type Sampler struct {
	Name  string  // as OTEL_TRACES_SAMPLER names it: "parentbased_always_on"
	Ratio float64 // for the traceidratio samplers, in [0, 1]
	code  uint8
}

// ParseSampler reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG as the
// OpenTelemetry SDK specification defines them: always_on, always_off,
// traceidratio, parentbased_always_on (the default, for an empty name),
// parentbased_always_off and parentbased_traceidratio; the ratio argument
// defaults to 1. Other samplers (jaeger_remote, xray, ...) are an error
// wrapping ErrInvalidConfig, as is a ratio outside [0, 1].
func ParseSampler(name, arg string) (Sampler, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" {
		name = "parentbased_always_on"
	}
	codes := map[string]uint8{
		"parentbased_always_on":    samplerParentBasedAlwaysOn,
		"parentbased_always_off":   samplerParentBasedAlwaysOff,
		"parentbased_traceidratio": samplerParentBasedTraceIDRatio,
		"always_on":                samplerAlwaysOn,
		"always_off":               samplerAlwaysOff,
		"traceidratio":             samplerTraceIDRatio,
	}
	code, ok := codes[name]
	if !ok {
		return Sampler{}, fmt.Errorf("%w: OTEL_TRACES_SAMPLER=%q: want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio", ErrInvalidConfig, name)
	}
	s := Sampler{Name: name, code: code, Ratio: 1}
	if code == samplerTraceIDRatio || code == samplerParentBasedTraceIDRatio {
		if strings.TrimSpace(arg) != "" {
			r, err := strconv.ParseFloat(strings.TrimSpace(arg), 64)
			if err != nil || math.IsNaN(r) || r < 0 || r > 1 {
				return Sampler{}, fmt.Errorf("%w: OTEL_TRACES_SAMPLER_ARG=%q: want a ratio between 0 and 1", ErrInvalidConfig, arg)
			}
			s.Ratio = r
		}
	}
	return s, nil
}

// bound is the traceidratio threshold of bpf/context.h: a trace is sampled
// when the big-endian last 8 bytes of its ID, shifted right by one, are
// below it. The OpenTelemetry Go SDK's TraceIDRatioBased computes it the
// same way, so both decide alike for every trace.
func (s Sampler) bound() uint64 {
	if s.Ratio >= 1 {
		return 1 << 63
	}
	return uint64(s.Ratio * (1 << 63))
}

// Propagators is an OTEL_PROPAGATORS setting.
type Propagators struct {
	// TraceContext is the W3C traceparent/tracestate propagator: incoming
	// context continued, outgoing requests given one.
	TraceContext bool
	// Ignored lists the propagators named that this tracer does not
	// implement (b3, jaeger, ...), for a warning.
	Ignored []string
}

// ParsePropagators reads OTEL_PROPAGATORS: a comma-separated list, default
// "tracecontext,baggage". "none" turns propagation off. Baggage needs
// nothing from the tracer: the tracer never reads or changes a baggage
// header, so it passes through as the application sent it.
func ParsePropagators(v string) (Propagators, error) {
	if strings.Trim(v, " ,") == "" {
		v = "tracecontext,baggage" // unset or empty: the specification's default
	}
	var p Propagators
	for _, name := range strings.Split(v, ",") {
		switch name = strings.ToLower(strings.TrimSpace(name)); name {
		case "tracecontext":
			p.TraceContext = true
		case "baggage", "":
		case "none":
			if strings.ToLower(strings.TrimSpace(v)) != "none" {
				return Propagators{}, fmt.Errorf("%w: OTEL_PROPAGATORS=%q: none cannot be combined with others", ErrInvalidConfig, v)
			}
		case "b3", "b3multi", "jaeger", "xray", "ottrace":
			p.Ignored = append(p.Ignored, name) // known to OpenTelemetry, not implemented here
		default:
			return Propagators{}, fmt.Errorf("%w: OTEL_PROPAGATORS=%q: unknown propagator %q (known: tracecontext, baggage, b3, b3multi, jaeger, xray, ottrace, none)", ErrInvalidConfig, v, name)
		}
	}
	return p, nil
}

// Constants returns the BPF constants for the sampler and propagators, for
// uprobe.Options.Constants.
func Constants(s Sampler, p Propagators) map[string]any {
	tc := uint8(0)
	if p.TraceContext {
		tc = 1
	}
	return map[string]any{
		SamplerConst:      s.code,
		SamplerBoundConst: s.bound(),
		TraceContextConst: tc,
	}
}
