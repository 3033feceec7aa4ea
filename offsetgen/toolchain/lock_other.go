//go:build !unix

package toolchain

import "context"

// lockFile is a no-op where flock is missing: goroutines of this process are
// still ordered by keyedMutex, but processes sharing a cache directory are
// not. Unpacking into a temporary directory and renaming it keeps even that
// case from producing a half tree.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	return func() {}, nil
}
