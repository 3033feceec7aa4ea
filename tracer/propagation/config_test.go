package propagation

import (
	"encoding/binary"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func TestParseSampler(t *testing.T) {
	for _, c := range []struct {
		name, arg string
		want      string
		ratio     float64
		err       string
	}{
		{name: "", want: "parentbased_always_on", ratio: 1},
		{name: "always_off", want: "always_off", ratio: 1},
		{name: " ParentBased_TraceIDRatio ", arg: "0.25", want: "parentbased_traceidratio", ratio: 0.25},
		{name: "traceidratio", want: "traceidratio", ratio: 1},
		{name: "traceidratio", arg: "1.5", err: "OTEL_TRACES_SAMPLER_ARG"},
		{name: "traceidratio", arg: "half", err: "OTEL_TRACES_SAMPLER_ARG"},
		{name: "jaeger_remote", err: "OTEL_TRACES_SAMPLER"},
	} {
		s, err := ParseSampler(c.name, c.arg)
		if c.err != "" {
			require.ErrorIs(t, err, ErrInvalidConfig, c.name)
			assert.Contains(t, err.Error(), c.err)
			continue
		}
		require.NoError(t, err, c.name)
		assert.Equal(t, c.want, s.Name)
		assert.Equal(t, c.ratio, s.Ratio)
	}
}

// The BPF rule (bpf/context.h ratio_sampled with Sampler.bound) must decide
// every trace as the OpenTelemetry Go SDK's TraceIDRatioBased does, so that
// a trace one of them samples is sampled by the other.
func TestRatioBoundAgreesWithTheSDK(t *testing.T) {
	for _, ratio := range []float64{0, 0.001, 0.25, 0.5, 0.999, 1} {
		s, err := ParseSampler("traceidratio", strconv.FormatFloat(ratio, 'g', -1, 64))
		require.NoError(t, err)
		sdk := sdktrace.TraceIDRatioBased(ratio)
		for i := uint64(0); i < 2000; i++ {
			var id trace.TraceID
			binary.BigEndian.PutUint64(id[8:], i*0x9e3779b97f4a7c15)
			ours := binary.BigEndian.Uint64(id[8:])>>1 < s.bound()
			theirs := sdk.ShouldSample(sdktrace.SamplingParameters{TraceID: id}).Decision == sdktrace.RecordAndSample
			require.Equal(t, theirs, ours, "ratio %v trace %s", ratio, id)
		}
	}
}

func TestParsePropagators(t *testing.T) {
	p, err := ParsePropagators("")
	require.NoError(t, err)
	assert.True(t, p.TraceContext)
	assert.Empty(t, p.Ignored)

	p, err = ParsePropagators("baggage,b3")
	require.NoError(t, err)
	assert.False(t, p.TraceContext)
	assert.Equal(t, []string{"b3"}, p.Ignored)

	p, err = ParsePropagators("none")
	require.NoError(t, err)
	assert.False(t, p.TraceContext)

	_, err = ParsePropagators("none,tracecontext")
	require.ErrorIs(t, err, ErrInvalidConfig)

	// An empty list is the default, as unset; a typo is an error, not a
	// silent "propagation off".
	p, err = ParsePropagators(" , ")
	require.NoError(t, err)
	assert.True(t, p.TraceContext)
	_, err = ParsePropagators("tracecontex")
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.ErrorContains(t, err, `unknown propagator "tracecontex" (known: tracecontext, baggage, b3`)
	p, err = ParsePropagators("Jaeger, XRay")
	require.NoError(t, err)
	assert.Equal(t, []string{"jaeger", "xray"}, p.Ignored)
}

func TestConstants(t *testing.T) {
	s, err := ParseSampler("parentbased_traceidratio", "0.5")
	require.NoError(t, err)
	c := Constants(s, Propagators{TraceContext: true})
	assert.Equal(t, samplerParentBasedTraceIDRatio, c[SamplerConst])
	assert.Equal(t, uint64(1)<<62, c[SamplerBoundConst])
	assert.Equal(t, uint8(1), c[TraceContextConst])
}

func TestCgroup2Mount(t *testing.T) {
	const mountinfo = `22 27 0:20 / /sys rw,nosuid shared:7 - sysfs sysfs rw
30 22 0:25 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:26 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:27 / /sys/fs/cgroup/with\040space rw shared:11 - cgroup2 cgroup2 rw
`
	got, err := cgroup2Mount(strings.NewReader(mountinfo))
	require.NoError(t, err)
	assert.Equal(t, "/sys/fs/cgroup/unified", got)

	_, err = cgroup2Mount(strings.NewReader("22 27 0:20 / /sys rw - sysfs sysfs rw\n"))
	require.ErrorIs(t, err, ErrNoCgroup2)

	assert.Equal(t, "/a b", unescapeMount(`/a\040b`))
}
