package fieldset

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/offsets"
)

func TestEveryBuiltInSetParsesWithItsBounds(t *testing.T) {
	modules := Modules()
	for _, m := range []string{"std", "google.golang.org/grpc", "golang.org/x/net", "github.com/segmentio/kafka-go", "go.opentelemetry.io/otel", "go.opentelemetry.io/otel/trace"} {
		assert.Contains(t, modules, m)
	}
	for _, m := range modules {
		t.Run(m, func(t *testing.T) {
			s, err := Load(m)
			require.NoError(t, err)
			assert.Equal(t, m, s.Module)
			require.NotEmpty(t, s.Fields)
			for _, f := range s.Fields {
				_, err := offsets.ParseFieldID(f.String())
				assert.NoError(t, err, f.String())
			}
			for id, b := range s.Bounds {
				assert.Contains(t, s.Fields, id, "a bound belongs to a listed field")
				assert.False(t, b.IsZero(), id.String())
				again, err := offsets.ParseConstraint(m, b.String())
				require.NoError(t, err, "bound of %s reparses", id)
				assert.Equal(t, b.String(), again.String())
			}
			for _, p := range s.Packages() {
				// The probe requires only the module itself: every package
				// is in it, or in the standard library (no dot in the
				// first path element).
				std := !strings.Contains(strings.Split(p, "/")[0], ".")
				if m != offsets.StdModule && !std {
					assert.True(t, p == m || strings.HasPrefix(p, m+"/"), "package %s is in module %s", p, m)
				}
			}
		})
	}
}

func TestGRPCBoundsFollowTheModulesHistory(t *testing.T) {
	s, err := Load("google.golang.org/grpc")
	require.NoError(t, err)
	has := func(set *Set, field string) bool {
		id, err := offsets.ParseFieldID(field)
		require.NoError(t, err)
		for _, f := range set.Fields {
			if f == id {
				return true
			}
		}
		return false
	}
	old, cur, newer := s.At("v1.59.0"), s.At("v1.70.0"), s.At("v1.77.0")
	assert.True(t, has(old, "google.golang.org/grpc/internal/transport.http2Server.remoteAddr"))
	assert.False(t, has(old, "google.golang.org/grpc/internal/transport.http2Server.peer"))
	assert.False(t, has(old, "google.golang.org/grpc/internal/transport.ServerStream.Stream.id"))
	assert.True(t, has(cur, "google.golang.org/grpc/internal/transport.http2Server.peer"))
	assert.True(t, has(cur, "google.golang.org/grpc/internal/transport.ServerStream.Stream"))
	assert.False(t, has(cur, "google.golang.org/grpc/internal/transport.ServerStream.Stream.id"), "*Stream before v1.77.0: offsets do not add up")
	assert.True(t, has(newer, "google.golang.org/grpc/internal/transport.ServerStream.Stream.id"))
	assert.Contains(t, newer.Bounds, offsets.FieldID{Package: "google.golang.org/grpc/internal/transport", Struct: "ServerStream", Field: "Stream.id"}, "At keeps the bounds of what it keeps")
	assert.False(t, has(cur, "google.golang.org/grpc/internal/transport.http2Server.remoteAddr"))
	assert.True(t, has(cur, "google.golang.org/grpc.ClientConn.target"), "unbounded fields are in every version")
}

func TestParseModuleReadsBoundsImportsAndKeepLines(t *testing.T) {
	s, err := ParseModule("example.com/m", strings.NewReader(`
import example.com/m/api   # for keep lines
import example.com/m/oldapi <v1.2.0
keep api.New >=v1.2.0
keep (*api.Client).Do
example.com/m.T.a >= v1.0.0, <v2.0.0
example.com/m.T.b
`))
	require.NoError(t, err)
	assert.Equal(t, []string{"example.com/m/api", "example.com/m/oldapi"}, s.Imports)
	assert.Equal(t, []string{"example.com/m/api", "example.com/m/oldapi"}, s.At("v1.1.0").Imports)
	assert.Equal(t, []string{"example.com/m/api"}, s.At("v1.2.0").Imports, "an import line's bound drops it")
	assert.Equal(t, []string{"api.New", "(*api.Client).Do"}, s.Keep)
	assert.Equal(t, ">=v1.2.0", s.KeepBounds[0].String())
	a := offsets.FieldID{Package: "example.com/m", Struct: "T", Field: "a"}
	assert.Equal(t, ">=v1.0.0,<v2.0.0", s.Bounds[a].String())
	assert.Equal(t, []string{"(*api.Client).Do"}, s.At("v1.1.0").Keep)
	assert.Len(t, s.At("v2.1.0").Fields, 1)
	assert.Len(t, s.At("v1.5.0").Fields, 2)
	assert.Contains(t, s.Packages(), "example.com/m/api")

	std, err := ParseModule(offsets.StdModule, strings.NewReader("net/http.Request.Pattern >=1.22\n"))
	require.NoError(t, err)
	assert.Equal(t, ">=go1.22.0", std.Bounds[offsets.FieldID{Package: "net/http", Struct: "Request", Field: "Pattern"}].String())
}

func TestParseRejectsBadBounds(t *testing.T) {
	for _, text := range []string{
		"example.com/m.T.a >=banana\n",
		"example.com/m.T.a >=\n",
		"keep f <=\n",
		"import \n",
		"import a b\n",
		"import example.com/m/api >=banana\n",
		"example.com/m.T.a\nexample.com/m.T.a >=v1.0.0\n",
	} {
		_, err := ParseModule("example.com/m", strings.NewReader(text))
		assert.Error(t, err, text)
	}
}
