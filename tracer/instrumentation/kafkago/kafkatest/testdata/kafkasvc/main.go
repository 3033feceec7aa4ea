// Command kafkasvc is the test service of the kafka-go instrumentation. It
// compiles against every kafka-go release package kafkatest builds it
// with, using only APIs they all have.
//
//	kafkasvc serve -http ADDR -broker ADDR -topic T
//	    /produce?id=N writes one message (n=K: K messages in one call) to
//	    T while handling the request; the message carries the request's
//	    traceparent header, if it had one, as an application that
//	    propagates context by hand does. Prints "http ADDR".
//	kafkasvc consume -broker ADDR -topic T -group G -n N
//	    reads N messages with ReadMessage and prints "msg PARTITION OFFSET KEY".
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
	fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "serve":
		serve(*addr, *broker, *topic)
	case "consume":
		consume(*broker, *topic, *group, *n)
	default:
		log.Fatalf("unknown command %q", os.Args[1])
	}
}

func serve(addr, broker, topic string) {
	w := kafka.NewWriter(kafka.WriterConfig{Brokers: []string{broker}, Topic: topic, BatchTimeout: 10 * time.Millisecond, BatchSize: 1})
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
		msgs := make([]kafka.Message, k)
		for i := range msgs {
			msgs[i] = kafka.Message{Key: []byte(id), Value: []byte("order " + id), Headers: headers}
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
		fmt.Println("msg", m.Partition, m.Offset, string(m.Key))
	}
}
