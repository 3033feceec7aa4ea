package probe

import (
	"go/parser"
	"go/token"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/fieldset"
)

func TestPackageName(t *testing.T) {
	tests := map[string]string{
		"net/http":                       "http",
		"runtime":                        "runtime",
		"github.com/jackc/pgx/v5":        "pgx",
		"github.com/go-sql-driver/mysql": "mysql",
		"gopkg.in/yaml.v3":               "yaml",
		"github.com/segmentio/kafka-go":  "kafkago",
		"google.golang.org/grpc":         "grpc",
	}
	for in, want := range tests {
		assert.Equal(t, want, packageName(in), in)
	}
}

func TestSourceKeepsExportedStructsAsVariables(t *testing.T) {
	set, err := fieldset.Parse(strings.NewReader("keep http.ListenAndServe\nnet/http.Request.Method\nnet/http.response.req\nruntime.g.goid\n"))
	require.NoError(t, err)
	src := string(Source(set))
	_, err = parser.ParseFile(token.NewFileSet(), "main.go", src, 0)
	require.NoError(t, err, src)
	assert.Contains(t, src, "http.Request\n", "exported struct declared as a variable")
	assert.NotContains(t, src, "http.response", "unexported structs cannot be named")
	assert.Contains(t, src, "http.ListenAndServe,")
	assert.Contains(t, src, "_ \"runtime\"", "a package only named by fields is imported for its side of the build")
	assert.NotContains(t, src, " any", "the probe must compile with Go 1.12")
}
