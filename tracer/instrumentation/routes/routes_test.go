package routes_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/server"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/routes"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

func all() []uprobe.Instrumentation {
	return []uprobe.Instrumentation{routes.Gin(), routes.Echo(), routes.Chi(), routes.GorillaMux()}
}

// TestEveryRouterSharesTheTemplatesMapWithTheServer: the net/http server,
// which reads the routes, and every router instrumentation, which writes
// them, declare the map and share it; without that each would have a map
// of its own and no route would reach a span.
func TestEveryRouterSharesTheTemplatesMapWithTheServer(t *testing.T) {
	for _, inst := range append(all(), server.Instrumentation()) {
		assert.Contains(t, inst.SharedMaps, routes.TemplatesMap, inst.Name)
		spec, err := inst.Spec()
		require.NoError(t, err)
		assert.Contains(t, spec.Maps, routes.TemplatesMap, inst.Name)
	}
}
