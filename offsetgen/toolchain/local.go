package toolchain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Installed is the Go toolchain installed on this machine (the go command
// on PATH) and the module settings it runs with.
type Installed struct {
	GOROOT  string
	Version string // "go1.26.8"
	GOCACHE string
	// ModuleEnv holds the module settings that are set ("GOMODCACHE=...",
	// "GOPROXY=...", "GOSUMDB=...", "GOPRIVATE=...", ...), for builds that
	// resolve modules as this user's go command would.
	ModuleEnv []string
}

// Local asks the go command on PATH where it lives and how it reaches
// modules. It runs with GOTOOLCHAIN=local outside any module, so the answer
// is the installed toolchain, whatever go line the current directory's
// module has.
func Local(ctx context.Context) (*Installed, error) {
	vars := []string{"GOROOT", "GOVERSION", "GOCACHE", "GOMODCACHE", "GOPROXY", "GOSUMDB", "GOPRIVATE", "GONOPROXY", "GONOSUMDB", "GOINSECURE", "GOAUTH"}
	cmd := exec.CommandContext(ctx, "go", append([]string{"env", "-json"}, vars...)...)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, fmt.Errorf("find the local Go toolchain ('go env'): %w; install Go and put it on PATH", err)
	}
	env := map[string]string{}
	if err := json.Unmarshal(out, &env); err != nil {
		return nil, fmt.Errorf("read 'go env -json': %w", err)
	}
	in := &Installed{GOROOT: env["GOROOT"], Version: env["GOVERSION"], GOCACHE: env["GOCACHE"]}
	if in.GOROOT == "" || in.Version == "" {
		return nil, errors.New("'go env' names no GOROOT or GOVERSION; install Go and put it on PATH")
	}
	for _, k := range vars[3:] {
		if v := env[k]; v != "" {
			in.ModuleEnv = append(in.ModuleEnv, k+"="+v)
		}
	}
	return in, nil
}
