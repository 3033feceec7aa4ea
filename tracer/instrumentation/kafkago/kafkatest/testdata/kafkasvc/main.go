// Command kafkasvc is the test service of the kafka-go instrumentation. It
// compiles against every kafka-go release package kafkatest builds it
// with, using only APIs they all have.
//
//	kafkasvc serve -http ADDR -broker ADDR -topic T [-batch-size B]
//	    /produce?id=N writes one message (n=K: K messages in one call,
//	    values "order N.I") to T while handling the request; the message
//	    carries the request's traceparent header, if it had one, as an
//	    application that propagates context by hand does, and a header
//	    "tag" with the value of tag=, if given; pad=P appends P bytes "x" to
//	    each value. Prints "http ADDR".
//	kafkasvc consume -broker ADDR -topic T -group G -n N
//	    reads N messages with ReadMessage and prints
//	    "msg PARTITION OFFSET KEY VALUE HEADERS" (HEADERS: key=value,...).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: kafkasvc serve|consume [flags]")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	addr := fs.String("http", "127.0.0.1:0", "HTTP listen address")
	broker := fs.String("broker", "", "Kafka broker address")
	topic := fs.String("topic", "orders", "topic")
	group := fs.String("group", "", "consumer group")
	n := fs.Int("n", 1, "messages to read")
	batch := fs.Int("batch-size", 1, "the Writer's BatchSize")
	fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "serve":
		serve(*addr, *broker, *topic, *batch)
	case "consume":
		consume(*broker, *topic, *group, *n)
	default:
		log.Fatalf("unknown command %q", os.Args[1])
	}
}

func serve(addr, broker, topic string, batch int) {
	w := kafka.NewWriter(kafka.WriterConfig{Brokers: []string{broker}, Topic: topic, BatchTimeout: 10 * time.Millisecond, BatchSize: batch})
	http.HandleFunc("/produce", func(rw http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		k, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if k < 1 {
			k = 1
		}
		var headers []kafka.Header
		if tp := r.Header.Get("traceparent"); tp != "" {
			headers = append(headers, kafka.Header{Key: "traceparent", Value: []byte(tp)})
		}
		if tag := r.URL.Query().Get("tag"); tag != "" {
			headers = append(headers, kafka.Header{Key: "tag", Value: []byte(tag)})
		}
		pad, _ := strconv.Atoi(r.URL.Query().Get("pad"))
		msgs := make([]kafka.Message, k)
		for i := range msgs {
			value := fmt.Sprintf("order %s.%d", id, i) + strings.Repeat("x", pad)
			msgs[i] = kafka.Message{Key: []byte(id), Value: []byte(value), Headers: headers}
		}
		if err := w.WriteMessages(r.Context(), msgs...); err != nil {
			http.Error(rw, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(rw, "ok")
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("http", l.Addr())
	log.Fatal(http.Serve(l, nil))
}

func consume(broker, topic, group string, n int) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, GroupID: group,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < n; i++ {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			log.Fatal(err)
		}
		var hs []string
		for _, h := range m.Headers {
			hs = append(hs, h.Key+"="+string(h.Value))
		}
		fmt.Printf("msg %d %d %s %q %s\n", m.Partition, m.Offset, m.Key, m.Value, strings.Join(hs, ","))
	}
}
