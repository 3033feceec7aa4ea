// Package gomap declares the runtime fields that bpf/gomap.h reads to find
// an entry of a Go map in a traced process: the header fields of both map
// implementations (runtime.hmap up to Go 1.23, the swiss tables of
// internal/runtime/maps from Go 1.24), so that every instrumentation that
// looks up a net/http.Header entry declares them the same way.
package gomap

import (
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// Fields returns the declarations of the map fields, for an
// instrumentation whose BPF object includes bpf/nethttp.h (which holds
// their constants). Each exists in one map implementation only, and the
// programs work without them, losing the header lookups (the W3C trace
// context of a request): they are IfResolved.
func Fields() []uprobe.Field {
	f := offsets.MustParseFieldID
	return []uprobe.Field{
		{ID: f("runtime.hmap.B"), Const: "off_hmap_B", IfResolved: true},
		{ID: f("runtime.hmap.buckets"), Const: "off_hmap_buckets", IfResolved: true},
		{ID: f("runtime.hmap.oldbuckets"), Const: "off_hmap_oldbuckets", IfResolved: true},
		{ID: f("internal/runtime/maps.Map.dirPtr"), Const: "off_Map_dirPtr", IfResolved: true},
		{ID: f("internal/runtime/maps.Map.dirLen"), Const: "off_Map_dirLen", IfResolved: true},
		{ID: f("internal/runtime/maps.table.groups"), Const: "off_table_groups", IfResolved: true},
		{ID: f("internal/runtime/maps.groupsReference.data"), Const: "off_groupsReference_data", IfResolved: true},
		{ID: f("internal/runtime/maps.groupsReference.lengthMask"), Const: "off_groupsReference_lengthMask", IfResolved: true},
	}
}
