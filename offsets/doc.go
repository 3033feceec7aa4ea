// Package offsets is the offset database: its on-disk schema, the builder
// that compacts per-version results into ranges, the lookup the tracer uses,
// and the integrity checks behind "offsetgen verify".
//
// The database is sharded one file per module (module "std" for the standard
// library) with an index that carries the schema version and each shard's
// sha256, so a reader decodes only the modules it needs. The format is
// described in docs/database.md.
package offsets
