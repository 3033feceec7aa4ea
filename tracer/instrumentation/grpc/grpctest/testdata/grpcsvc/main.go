// Command grpcsvc serves and calls grpc-go's own example services
// (helloworld.Greeter and routeguide.RouteGuide), for end-to-end tests of the
// gRPC instrumentation. It is built by package grpctest against many grpc-go
// versions and Go releases, so it sticks to APIs that exist in all of them:
// grpc.Dial with grpc.WithInsecure, grpc.Errorf and grpc.Code, interface{}
// rather than any, no generics, io/ioutil (Go releases from 1.12 build it).
//
// The services are registered with ServiceDescs written here, using the
// examples' message types and client stubs: the generated server
// interfaces of later examples require embedding Unimplemented types that
// older ones lack, so no single server type satisfies them all. The wire
// names and messages are those of the examples.
//
//	grpcsvc serve -addr 127.0.0.1:0 [-http 127.0.0.1:0] [-upstream HOST:PORT]
//	grpcsvc call -addr HOST:PORT [-traceparent VALUE] RPC...
//
// serve prints "grpc ADDR" (and "http ADDR") once listening. call prints
// "<rpc> <CodeName>" per RPC; RPCs are hello:<name>, get, list, record and
// chat, where name is ok, notfound, panic, slow, grpc:HOST:PORT (a nested
// SayHello("ok") to that server), http:URL (a nested HTTP GET), fanout:URL
// (two goroutines GET it while the handler waits) or late:URL (a goroutine
// GETs it 300 ms after the handler returned).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	pb "google.golang.org/grpc/examples/helloworld/helloworld"
	rg "google.golang.org/grpc/examples/route_guide/routeguide"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "serve":
		os.Exit(serve(os.Args[2:]))
	case "call":
		os.Exit(call(os.Args[2:]))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: grpcsvc serve -addr HOST:PORT [-http HOST:PORT] [-upstream HOST:PORT]\n       grpcsvc call -addr HOST:PORT RPC...")
	os.Exit(2)
}

// dial connects without blocking, so that an RPC to a closed port fails
// with Unavailable instead of waiting. A non-empty traceparent is sent as
// request metadata with every RPC.
func dial(addr, traceparent string) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{grpc.WithInsecure()}
	if traceparent != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(metadataCreds{"traceparent": traceparent}))
	}
	return grpc.Dial(addr, opts...)
}

// metadataCreds adds fixed metadata to every RPC: per-RPC credentials are
// the one way to do so that every grpc-go release has, and they work over
// an insecure connection when they do not require transport security.
type metadataCreds map[string]string

func (m metadataCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return m, nil
}

func (metadataCreds) RequireTransportSecurity() bool { return false }

// codeOf names the status code of err, "OK" for nil.
func codeOf(err error) string { return grpc.Code(err).String() }

// server implements both services.
type server struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// conn returns a cached connection to addr.
func (s *server) conn(addr string) (*grpc.ClientConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.conns[addr]; ok {
		return c, nil
	}
	c, err := dial(addr, "")
	if err != nil {
		return nil, err
	}
	s.conns[addr] = c
	return c, nil
}

// get GETs url with net/http's default client.
func get(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	io.Copy(ioutil.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func (s *server) sayHello(ctx context.Context, in *pb.HelloRequest) (*pb.HelloReply, error) {
	name := in.Name
	switch {
	case name == "ok":
		return &pb.HelloReply{Message: "hello ok"}, nil
	case name == "notfound":
		return nil, grpc.Errorf(codes.NotFound, "no greeting for %q", name)
	case name == "panic":
		panic("grpcsvc: asked to panic")
	case name == "slow":
		select {
		case <-ctx.Done():
			if ctx.Err() == context.Canceled {
				return nil, grpc.Errorf(codes.Canceled, "%v", ctx.Err())
			}
			return nil, grpc.Errorf(codes.DeadlineExceeded, "%v", ctx.Err())
		case <-time.After(5 * time.Second):
			return &pb.HelloReply{Message: "hello slow"}, nil
		}
	case strings.HasPrefix(name, "grpc:"):
		c, err := s.conn(strings.TrimPrefix(name, "grpc:"))
		if err != nil {
			return nil, grpc.Errorf(codes.Internal, "dial: %v", err)
		}
		r, err := pb.NewGreeterClient(c).SayHello(ctx, &pb.HelloRequest{Name: "ok"})
		if err != nil {
			return nil, err
		}
		return &pb.HelloReply{Message: "via grpc: " + r.Message}, nil
	case strings.HasPrefix(name, "http:"):
		req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimPrefix(name, "http:"), nil)
		if err != nil {
			return nil, grpc.Errorf(codes.InvalidArgument, "%v", err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, grpc.Errorf(codes.Unavailable, "%v", err)
		}
		body, _ := ioutil.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, grpc.Errorf(codes.Internal, "GET answered %s", resp.Status)
		}
		return &pb.HelloReply{Message: "via http: " + string(body)}, nil
	case strings.HasPrefix(name, "fanout:"):
		// Two goroutines GET the URL while the handler waits for them.
		url := strings.TrimPrefix(name, "fanout:")
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for i := 0; i < 2; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- get(url)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return nil, grpc.Errorf(codes.Unavailable, "%v", err)
			}
		}
		return &pb.HelloReply{Message: "fanned out"}, nil
	case strings.HasPrefix(name, "late:"):
		// A goroutine that GETs the URL after the handler has returned.
		url := strings.TrimPrefix(name, "late:")
		go func() {
			time.Sleep(300 * time.Millisecond)
			get(url)
		}()
		return &pb.HelloReply{Message: "later"}, nil
	}
	return nil, grpc.Errorf(codes.InvalidArgument, "unknown name %q", name)
}

func (s *server) getFeature(ctx context.Context, p *rg.Point) (*rg.Feature, error) {
	return &rg.Feature{Name: "feature", Location: p}, nil
}

func (s *server) listFeatures(stream grpc.ServerStream) error {
	rect := new(rg.Rectangle)
	if err := stream.RecvMsg(rect); err != nil {
		return err
	}
	for i := int32(0); i < 3; i++ {
		f := &rg.Feature{Name: fmt.Sprintf("feature %d", i), Location: &rg.Point{Latitude: i, Longitude: i}}
		if err := stream.SendMsg(f); err != nil {
			return err
		}
	}
	return nil
}

func (s *server) recordRoute(stream grpc.ServerStream) error {
	var n int32
	for {
		p := new(rg.Point)
		err := stream.RecvMsg(p)
		if err == io.EOF {
			return stream.SendMsg(&rg.RouteSummary{PointCount: n})
		}
		if err != nil {
			return err
		}
		n++
	}
}

func (s *server) routeChat(stream grpc.ServerStream) error {
	for {
		note := new(rg.RouteNote)
		err := stream.RecvMsg(note)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.SendMsg(note); err != nil {
			return err
		}
	}
}

// unary adapts a method of server to a grpc method handler, honouring the
// server's interceptor as generated code does.
func unary(method string, newIn func() interface{}, call func(*server, context.Context, interface{}) (interface{}, error)) grpc.MethodDesc {
	name := method[strings.LastIndex(method, "/")+1:]
	return grpc.MethodDesc{
		MethodName: name,
		Handler: func(srv interface{}, ctx context.Context, dec func(interface{}) error, interceptor grpc.UnaryServerInterceptor) (interface{}, error) {
			in := newIn()
			if err := dec(in); err != nil {
				return nil, err
			}
			handler := func(ctx context.Context, req interface{}) (interface{}, error) {
				return call(srv.(*server), ctx, req)
			}
			if interceptor == nil {
				return handler(ctx, in)
			}
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: method}, handler)
		},
	}
}

type service interface{}

var greeterDesc = grpc.ServiceDesc{
	ServiceName: "helloworld.Greeter",
	HandlerType: (*service)(nil),
	Methods: []grpc.MethodDesc{
		unary("/helloworld.Greeter/SayHello", func() interface{} { return new(pb.HelloRequest) },
			func(s *server, ctx context.Context, in interface{}) (interface{}, error) {
				return s.sayHello(ctx, in.(*pb.HelloRequest))
			}),
	},
	Metadata: "helloworld.proto",
}

var routeGuideDesc = grpc.ServiceDesc{
	ServiceName: "routeguide.RouteGuide",
	HandlerType: (*service)(nil),
	Methods: []grpc.MethodDesc{
		unary("/routeguide.RouteGuide/GetFeature", func() interface{} { return new(rg.Point) },
			func(s *server, ctx context.Context, in interface{}) (interface{}, error) {
				return s.getFeature(ctx, in.(*rg.Point))
			}),
	},
	Streams: []grpc.StreamDesc{
		{StreamName: "ListFeatures", ServerStreams: true,
			Handler: func(srv interface{}, stream grpc.ServerStream) error { return srv.(*server).listFeatures(stream) }},
		{StreamName: "RecordRoute", ClientStreams: true,
			Handler: func(srv interface{}, stream grpc.ServerStream) error { return srv.(*server).recordRoute(stream) }},
		{StreamName: "RouteChat", ServerStreams: true, ClientStreams: true,
			Handler: func(srv interface{}, stream grpc.ServerStream) error { return srv.(*server).routeChat(stream) }},
	},
	Metadata: "route_guide.proto",
}

// recoverPanics turns a handler panic into status Internal.
func recoverPanics(ctx context.Context, req interface{}, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp interface{}, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = grpc.Errorf(codes.Internal, "panic in %s: %v", info.FullMethod, r)
		}
	}()
	return handler(ctx, req)
}

func serve(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "gRPC listen address")
	httpAddr := fs.String("http", "", "HTTP front end listen address (none if empty)")
	upstream := fs.String("upstream", "", "gRPC address /hello calls (default: this server's own)")
	lifetime := fs.Duration("lifetime", 10*time.Minute, "exit after this long, so that a forgotten server does not linger")
	fs.Parse(args)

	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpcsvc:", err)
		return 1
	}
	srv := &server{conns: map[string]*grpc.ClientConn{}}
	gs := grpc.NewServer(grpc.UnaryInterceptor(recoverPanics))
	gs.RegisterService(&greeterDesc, srv)
	gs.RegisterService(&routeGuideDesc, srv)
	fmt.Printf("grpc %s\n", lis.Addr())

	errc := make(chan error, 2)
	if *httpAddr != "" {
		hl, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "grpcsvc:", err)
			return 1
		}
		target := *upstream
		if target == "" {
			target = lis.Addr().String()
		}
		fmt.Printf("http %s\n", hl.Addr())
		go func() { errc <- http.Serve(hl, frontEnd(srv, target)) }()
	}
	go func() { errc <- gs.Serve(lis) }()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case err := <-errc:
		fmt.Fprintln(os.Stderr, "grpcsvc:", err)
		return 1
	case <-sig:
		gs.Stop()
		return 0
	case <-time.After(*lifetime):
		fmt.Fprintln(os.Stderr, "grpcsvc: lifetime over")
		return 1
	}
}

// frontEnd answers GET /hello?name=X with SayHello(X) on target, and
// GET /ping.
func frontEnd(srv *server, target string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "pong")
	})
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		c, err := srv.conn(target)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		reply, err := pb.NewGreeterClient(c).SayHello(ctx, &pb.HelloRequest{Name: r.URL.Query().Get("name")})
		if err != nil {
			http.Error(w, codeOf(err), http.StatusBadGateway)
			return
		}
		fmt.Fprintln(w, reply.Message)
	})
	return mux
}

func call(args []string) int {
	fs := flag.NewFlagSet("call", flag.ExitOnError)
	addr := fs.String("addr", "", "gRPC server address")
	traceparent := fs.String("traceparent", "", "W3C traceparent metadata to send with every RPC")
	fs.Parse(args)
	if *addr == "" || fs.NArg() == 0 {
		usage()
	}
	// Each RPC has its own deadline; this bounds the whole run.
	time.AfterFunc(time.Duration(fs.NArg())*5*time.Second+5*time.Second, func() {
		fmt.Fprintln(os.Stderr, "grpcsvc call: overall timeout")
		os.Exit(3)
	})
	c, err := dial(*addr, *traceparent)
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpcsvc call:", err)
		return 1
	}
	defer c.Close()
	for _, rpc := range fs.Args() {
		timeout := 2 * time.Second
		if rpc == "hello:slow" {
			timeout = 200 * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := do(ctx, c, rpc)
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", rpc, err)
		}
		fmt.Printf("%s %s\n", rpc, codeOf(err))
	}
	return 0
}

// errMismatch is a successful RPC with an unexpected answer; it reports as
// code Unknown.
var errMismatch = errors.New("unexpected answer")

func do(ctx context.Context, c *grpc.ClientConn, rpc string) error {
	guide := rg.NewRouteGuideClient(c)
	switch {
	case strings.HasPrefix(rpc, "hello:"):
		_, err := pb.NewGreeterClient(c).SayHello(ctx, &pb.HelloRequest{Name: strings.TrimPrefix(rpc, "hello:")})
		return err
	case rpc == "get":
		f, err := guide.GetFeature(ctx, &rg.Point{Latitude: 409146138, Longitude: -746188906})
		if err == nil && (f.Location == nil || f.Location.Latitude != 409146138) {
			return errMismatch
		}
		return err
	case rpc == "list":
		stream, err := guide.ListFeatures(ctx, &rg.Rectangle{Lo: &rg.Point{Latitude: 1}, Hi: &rg.Point{Latitude: 2}})
		if err != nil {
			return err
		}
		n := 0
		for {
			_, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			n++
		}
		if n != 3 {
			return fmt.Errorf("%w: %d features", errMismatch, n)
		}
		return nil
	case rpc == "record":
		stream, err := guide.RecordRoute(ctx)
		if err != nil {
			return err
		}
		for i := int32(0); i < 3; i++ {
			if err := stream.Send(&rg.Point{Latitude: i, Longitude: i}); err != nil {
				return err
			}
		}
		sum, err := stream.CloseAndRecv()
		if err != nil {
			return err
		}
		if sum.PointCount != 3 {
			return fmt.Errorf("%w: point count %d", errMismatch, sum.PointCount)
		}
		return nil
	case rpc == "chat":
		stream, err := guide.RouteChat(ctx)
		if err != nil {
			return err
		}
		for i := 0; i < 3; i++ {
			msg := fmt.Sprintf("note %d", i)
			if err := stream.Send(&rg.RouteNote{Location: &rg.Point{Latitude: int32(i)}, Message: msg}); err != nil {
				return err
			}
			got, err := stream.Recv()
			if err != nil {
				return err
			}
			if got.Message != msg {
				return fmt.Errorf("%w: echo %q", errMismatch, got.Message)
			}
		}
		if err := stream.CloseSend(); err != nil {
			return err
		}
		if _, err := stream.Recv(); err != io.EOF {
			return fmt.Errorf("%w: after CloseSend: %v", errMismatch, err)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown RPC %q", errMismatch, rpc)
}
