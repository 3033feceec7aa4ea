// Package offsetdb embeds the generated offset database (data/) so that the
// tracer and "offsetgen query" work without a checkout.
package offsetdb

import (
	"embed"
	"io/fs"
)

//go:embed data/*.json
var data embed.FS

// Data returns the embedded database, rooted at its index.
func Data() fs.FS {
	sub, err := fs.Sub(data, "data")
	if err != nil {
		panic(err) // "data" is a literal directory of the embed: cannot fail
	}
	return sub
}
