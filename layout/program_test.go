package layout

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/offsets"
)

// programDir holds the programs the tests build, once per test binary: each
// build costs seconds, a cross build of net/http for a new GOARCH a minute.
var programDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "layout-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	programDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// program is a Go program built for one target.
type program struct {
	Source  string
	GOARCH  string
	LDFlags string
	GoCmd   string // The go command to build with; "go" from PATH when empty.
}

type builtProgram struct {
	once sync.Once
	path string
	err  error
}

var builtPrograms sync.Map // program -> *builtProgram

// build returns the path of p's binary, building it with the local go
// toolchain on first use. It skips the test when there is no go command.
func (p program) build(tb testing.TB) string {
	tb.Helper()
	goCmd := p.GoCmd
	if goCmd == "" {
		var err error
		if goCmd, err = exec.LookPath("go"); err != nil {
			tb.Skipf("no go toolchain to build test programs: %v", err)
		}
	}
	v, _ := builtPrograms.LoadOrStore(p, &builtProgram{})
	bp := v.(*builtProgram)
	bp.once.Do(func() {
		dir, err := os.MkdirTemp(programDir, "prog-")
		if err != nil {
			bp.err = err
			return
		}
		files := map[string]string{
			"go.mod":  "module probe\n\ngo 1.21\n",
			"main.go": p.Source,
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				bp.err = err
				return
			}
		}
		bp.path = filepath.Join(dir, "prog")
		cmd := exec.Command(goCmd, "build", "-trimpath", "-ldflags="+p.LDFlags, "-o", bp.path, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOTOOLCHAIN=local", "GOOS=linux", "GOARCH="+p.GOARCH)
		if out, err := cmd.CombinedOutput(); err != nil {
			bp.err = fmt.Errorf("%s build GOARCH=%s -ldflags=%q: %w\n%s", goCmd, p.GOARCH, p.LDFlags, err, out)
		}
	})
	require.NoError(tb, bp.err)
	return bp.path
}

// oracle is what a test program reports about its own layout at run time.
type oracle struct {
	unsafe  map[offsets.FieldID]offsets.Value // From unsafe.Offsetof-style pointer arithmetic and unsafe.Sizeof.
	reflect map[offsets.FieldID]offsets.Value // From reflect.Type.FieldByName.
}

// runOracle runs the program at path and parses its report, lines of
// "unsafe|reflect <field id> <offset> <size>".
func runOracle(t *testing.T, path string) oracle {
	t.Helper()
	out, err := exec.Command(path).Output()
	require.NoError(t, err, "run %s", path)
	o := oracle{unsafe: map[offsets.FieldID]offsets.Value{}, reflect: map[offsets.FieldID]offsets.Value{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		require.Len(t, f, 4, "oracle line %q", sc.Text())
		id, err := offsets.ParseFieldID(f[1])
		require.NoError(t, err)
		off, err := strconv.ParseUint(f[2], 10, 64)
		require.NoError(t, err)
		size, err := strconv.ParseUint(f[3], 10, 64)
		require.NoError(t, err)
		v := offsets.Value{Offset: off, Size: size}
		switch f[0] {
		case "unsafe":
			o.unsafe[id] = v
		case "reflect":
			o.reflect[id] = v
		default:
			t.Fatalf("oracle line %q: unknown kind", sc.Text())
		}
	}
	require.NotEmpty(t, o.unsafe)
	return o
}

// probeSource is the test program. It declares structs with the shapes
// layout must handle and prints their layout as the compiler sees it, the
// oracle the DWARF offsets are checked against. It avoids generics and other
// new syntax so that it builds with any Go release since 1.12.
const probeSource = `package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"sync"
	"unsafe"
)

type Inner struct {
	A int8
	B int64
	C string
}

type Embedded struct {
	X int32
	Y *int
}

type InnerPtr *Inner

type Outer struct {
	Flag bool
	Ptr  *Inner
	Embedded
	sync.Mutex
	In    Inner
	Named InnerPtr
	Tail  []byte
	Any   interface{}
	M     map[string]int
	Arr   [3]uint16
	Deep  struct {
		Pad byte
		In  Inner
	}
}

var global Outer

func show(id string, base, field unsafe.Pointer, size uintptr) {
	fmt.Printf("unsafe %s %d %d\n", id, uintptr(field)-uintptr(base), size)
}

func showReflect(id string, t reflect.Type, path ...string) {
	var off uintptr
	for _, name := range path {
		f, ok := t.FieldByName(name)
		if !ok {
			panic(id + ": no field " + name)
		}
		off += f.Offset
		t = f.Type
	}
	fmt.Printf("reflect %s %d %d\n", id, off, t.Size())
}

type ctxKey struct{}

func main() {
	o := &global
	b := unsafe.Pointer(o)
	show("main.Outer.Flag", b, unsafe.Pointer(&o.Flag), unsafe.Sizeof(o.Flag))
	show("main.Outer.Ptr", b, unsafe.Pointer(&o.Ptr), unsafe.Sizeof(o.Ptr))
	show("main.Outer.Embedded", b, unsafe.Pointer(&o.Embedded), unsafe.Sizeof(o.Embedded))
	show("main.Outer.Embedded.Y", b, unsafe.Pointer(&o.Embedded.Y), unsafe.Sizeof(o.Embedded.Y))
	show("main.Outer.Mutex", b, unsafe.Pointer(&o.Mutex), unsafe.Sizeof(o.Mutex))
	show("main.Outer.In", b, unsafe.Pointer(&o.In), unsafe.Sizeof(o.In))
	show("main.Outer.In.B", b, unsafe.Pointer(&o.In.B), unsafe.Sizeof(o.In.B))
	show("main.Outer.In.C", b, unsafe.Pointer(&o.In.C), unsafe.Sizeof(o.In.C))
	show("main.Outer.Named", b, unsafe.Pointer(&o.Named), unsafe.Sizeof(o.Named))
	show("main.Outer.Tail", b, unsafe.Pointer(&o.Tail), unsafe.Sizeof(o.Tail))
	show("main.Outer.Any", b, unsafe.Pointer(&o.Any), unsafe.Sizeof(o.Any))
	show("main.Outer.M", b, unsafe.Pointer(&o.M), unsafe.Sizeof(o.M))
	show("main.Outer.Arr", b, unsafe.Pointer(&o.Arr), unsafe.Sizeof(o.Arr))
	show("main.Outer.Deep.In.C", b, unsafe.Pointer(&o.Deep.In.C), unsafe.Sizeof(o.Deep.In.C))
	in := &o.In
	show("main.Inner.B", unsafe.Pointer(in), unsafe.Pointer(&in.B), unsafe.Sizeof(in.B))
	e := &o.Embedded
	show("main.Embedded.Y", unsafe.Pointer(e), unsafe.Pointer(&e.Y), unsafe.Sizeof(e.Y))

	showReflect("net/http.Request.ctx", reflect.TypeOf(http.Request{}), "ctx")
	showReflect("net/http.Request.URL", reflect.TypeOf(http.Request{}), "URL")
	showReflect("net/http.Request.Header", reflect.TypeOf(http.Request{}), "Header")
	ctx := context.WithValue(context.Background(), ctxKey{}, 1)
	showReflect("context.valueCtx.Context", reflect.TypeOf(ctx).Elem(), "Context")
	showReflect("context.valueCtx.val", reflect.TypeOf(ctx).Elem(), "val")
	showReflect("net.TCPAddr.Port", reflect.TypeOf(net.TCPAddr{}), "Port")

	// net/http.response is only to be had as the ResponseWriter a server
	// hands to its handler; without loopback networking it goes unchecked.
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		var once sync.Once
		var rt reflect.Type
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			once.Do(func() { rt = reflect.TypeOf(w).Elem() })
		})}
		go srv.Serve(ln)
		if resp, err := http.Get("http://" + ln.Addr().String()); err == nil {
			resp.Body.Close()
			showReflect("net/http.response.req", rt, "req")
		}
		srv.Close()
	}
}
`
