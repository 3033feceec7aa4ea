// Package routes records the route template the router of a request
// matched — gin, echo v4, chi v5, gorilla/mux — for the net/http server
// span's http.route and name ("GET /users/:id").
//
// Each router is one instrumentation (Gin, Echo, Chi, GorillaMux), used
// only by programs that link its library, with one BPF object beside this
// file (gin.c, ...). The net/http.ServeMux (Go 1.22+) is read the same way
// by a probe of the net/http server instrumentation itself, so that no
// instrumentation is disabled on older releases. None submits records: a router
// runs on the goroutine of the server request it routes, so each writes
// the template into the map TemplatesMap (bpf/route.h) by goroutine, and
// the net/http server instrumentation reads it when the request ends, in
// preference to the pattern net/http left in the Request it was given
// (which middleware calling r.WithContext, and nested muxes, hide). When
// routers nest, the innermost that matched wins; chi's levels add up to
// one pattern. A router that matched nothing leaves the request without a
// route.
//
// The templates are what each router's own API returns: gin's
// Context.FullPath ("/users/:id"), echo's Context.Path, chi's
// Context.RoutePattern ("/users/{id}"), gorilla/mux's
// Route.GetPathTemplate (and the path part of a ServeMux pattern). At most
// 128 bytes of a template are kept.
//
// Requirements on the target: Go 1.12+, both calling conventions (the
// arguments read are preceded only by word-sized ones, bpf/go_abi.h); gin
// v1.5.0+ (before, gin keeps no template); the struct fields of
// fieldset/<module>.fields.
package routes

import (
	"errors"

	"github.com/cilium/ebpf"

	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// The BPF objects, compiled for both targets and committed, come from the
// C files beside this one and the shared headers in bpf/; the build needs
// clang and libbpf-dev.
//go:generate go tool bpf2go -tags linux -target amd64,arm64 gin gin.c -- -I../../../bpf -O2 -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu
//go:generate go tool bpf2go -tags linux -target amd64,arm64 echo echo.c -- -I../../../bpf -O2 -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu
//go:generate go tool bpf2go -tags linux -target amd64,arm64 chi chi.c -- -I../../../bpf -O2 -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu
//go:generate go tool bpf2go -tags linux -target amd64,arm64 gorillamux gorillamux.c -- -I../../../bpf -O2 -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu

// TemplatesMap is the BPF map, declared in bpf/route.h, through which the
// router instrumentations hand the template to the net/http server
// instrumentation; every one of them shares it (uprobe.Instrumentation.SharedMaps).
const TemplatesMap = "route_templates"

// Names of the instrumentations, for logs and the tests.
const (
	GinName        = "gin routes"
	EchoName       = "echo routes"
	ChiName        = "chi routes"
	GorillaMuxName = "gorilla/mux routes"
)

var goid = uprobe.Field{ID: offsets.MustParseFieldID("runtime.g.goid"), Const: "off_g_goid"}

// router declares the route instrumentation name of one router: its one
// probe, its BPF object and the fields it reads besides the goroutine id.
// Every router records into TemplatesMap and submits no records.
func router(name string, probe uprobe.Probe, spec func() (*ebpf.CollectionSpec, error), fields ...uprobe.Field) uprobe.Instrumentation {
	return uprobe.Instrumentation{
		Name:       name,
		Probes:     []uprobe.Probe{probe},
		Fields:     append([]uprobe.Field{goid}, fields...),
		SharedMaps: []string{TemplatesMap},
		Spec:       spec,
		Decode:     decode,
	}
}

// Gin returns the declaration of the gin route instrumentation: gin
// v1.5.0 and later, whose Context holds the matched route.
func Gin() uprobe.Instrumentation {
	return router(GinName,
		uprobe.Probe{Symbol: "github.com/gin-gonic/gin.(*Engine).handleHTTPRequest", Entry: "gin_entry", Return: "gin_return", Versions: ">=v1.5.0", StackABI: true},
		ginSpec,
		uprobe.Field{ID: offsets.MustParseFieldID("github.com/gin-gonic/gin.Context.fullPath"), Const: "off_Context_fullPath"})
}

// Echo returns the declaration of the echo v4 route instrumentation.
func Echo() uprobe.Instrumentation {
	return router(EchoName,
		uprobe.Probe{Symbol: "github.com/labstack/echo/v4.(*Router).Find", Entry: "echo_entry", Return: "echo_return", StackABI: true},
		echoSpec,
		uprobe.Field{ID: offsets.MustParseFieldID("github.com/labstack/echo/v4.context.path"), Const: "off_context_path"})
}

// Chi returns the declaration of the chi v5 route instrumentation.
func Chi() uprobe.Instrumentation {
	return router(ChiName,
		uprobe.Probe{Symbol: "github.com/go-chi/chi/v5.(*node).FindRoute", Entry: "chi_entry", Return: "chi_return", StackABI: true},
		chiSpec,
		uprobe.Field{ID: offsets.MustParseFieldID("github.com/go-chi/chi/v5.Context.routePattern"), Const: "off_Context_routePattern"})
}

// GorillaMux returns the declaration of the gorilla/mux route
// instrumentation. The path template is behind a pointer field before
// v1.7.0 and inside a value from v1.7.0: one of the two is Absent.
func GorillaMux() uprobe.Instrumentation {
	return router(GorillaMuxName,
		uprobe.Probe{Symbol: "github.com/gorilla/mux.(*Router).Match", Entry: "mux_entry", Return: "mux_return", StackABI: true},
		gorillamuxSpec,
		uprobe.Field{ID: offsets.MustParseFieldID("github.com/gorilla/mux.RouteMatch.Route"), Const: "off_RouteMatch_Route"},
		uprobe.Field{ID: offsets.MustParseFieldID("github.com/gorilla/mux.Route.regexp"), Const: "off_Route_regexp", Optional: true},                               // <v1.7.0
		uprobe.Field{ID: offsets.MustParseFieldID("github.com/gorilla/mux.routeRegexpGroup.path"), Const: "off_routeRegexpGroup_path"},                             // every version
		uprobe.Field{ID: offsets.MustParseFieldID("github.com/gorilla/mux.Route.routeConf.regexp.path"), Const: "off_Route_routeConf_regexp_path", Optional: true}, // v1.7.0+
		uprobe.Field{ID: offsets.MustParseFieldID("github.com/gorilla/mux.routeRegexp.template"), Const: "off_routeRegexp_template"})
}

// errNoRecords is what decode reports: the programs submit no records.
var errNoRecords = errors.New("route instrumentations submit no records")

func decode([]byte, *spans.Span) error { return errNoRecords }
