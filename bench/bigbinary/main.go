// Command bigbinary is the offset-resolution benchmark's large target: the
// example service's routes linked with the Kubernetes clientset and a dozen
// AWS SDK v2 service clients, whose exported methods are all kept by the
// reflective call in keep, so the binary (and its DWARF) has the size of a
// real, dependency-heavy Go service: well over 100 MB.
//
// It links net/http.serverHandler.ServeHTTP and (*net/http.Transport).roundTrip,
// the functions the tracer probes. It lives in its own module (go.mod beside
// it) so that the project's go.mod does not carry these dependencies.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// clients builds every client, so that their types are reachable.
func clients() []any {
	cfg := aws.Config{Region: "us-east-1"}
	cs, _ := kubernetes.NewForConfig(&rest.Config{Host: "http://127.0.0.1:1"})
	return []any{
		cs,
		cloudwatch.NewFromConfig(cfg), dynamodb.NewFromConfig(cfg), ec2.NewFromConfig(cfg),
		ecs.NewFromConfig(cfg), eks.NewFromConfig(cfg), iam.NewFromConfig(cfg),
		lambda.NewFromConfig(cfg), rds.NewFromConfig(cfg), s3.NewFromConfig(cfg),
		sns.NewFromConfig(cfg), sqs.NewFromConfig(cfg), sts.NewFromConfig(cfg),
	}
}

// keep calls a method chosen at run time: the linker must then keep every
// exported method of every reachable type, as it does for programs that
// use text/template or RPC frameworks.
func keep(name string) {
	for _, c := range clients() {
		if m := reflect.ValueOf(c).MethodByName(name); m.IsValid() {
			fmt.Println(name, m.Type())
		}
	}
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "method" {
		keep(os.Args[2])
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/backend", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "backend ok") })
	mux.HandleFunc("/items/", func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get("http://" + r.Host + "/backend")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		io.Copy(w, resp.Body)
		resp.Body.Close()
	})
	fmt.Printf("listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: mux, BaseContext: func(net.Listener) context.Context { return context.Background() }}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
