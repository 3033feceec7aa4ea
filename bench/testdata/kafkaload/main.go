// Command kafkaload is the Kafka broker and load generator of the bench
// harness's db section (kafka-go's Writer and Reader against franz-go's
// kfake broker, which speaks the real Kafka protocol: there is no Kafka
// broker package on the bench machines).
//
//	kafkaload broker
//	    runs a kfake broker with the topics "produce" and "consume" (one
//	    partition each) on 127.0.0.1 and prints "broker ADDR"; it exits
//	    when its stdin closes.
//	kafkaload load -broker ADDR -workers N [-consume-messages M]
//	    fills "consume" with M messages, checks both kinds work, prints
//	    "listening on -", then on each stdin line "run DURATION KIND"
//	    calls for DURATION and prints "calls=N errors=E seconds=S":
//	    kafka-produce: N callers, each writing one message per
//	    WriteMessages call, back to back, through one shared synchronous
//	    Writer (BatchSize 1: a call's message is a full batch and is sent
//	    at once, in a Produce request of its own; RequiredAcks one: the
//	    call returns when the broker has stored it);
//	    kafka-consume: one caller reading "consume" with ReadMessage (no
//	    consumer group, so no commits), back to back, from where the last
//	    run stopped, starting over at offset 0 after the last message.
//
// The broker is a process of its own, so that the load process, the one
// the harness traces, does only the client's work.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "broker":
		err = broker()
	case len(os.Args) > 1 && os.Args[1] == "load":
		err = load(os.Args[2:])
	default:
		err = errors.New("usage: kafkaload broker | kafkaload load -broker ADDR -workers N")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafkaload:", err)
		os.Exit(1)
	}
}

func broker() error {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "produce", "consume"))
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Println("broker", c.ListenAddrs()[0])
	io.Copy(io.Discard, os.Stdin)
	return nil
}

func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	addr := fs.String("broker", "", "broker address")
	workers := fs.Int("workers", 8, "concurrent producers")
	fill := fs.Int("consume-messages", 200000, "messages written to \"consume\" before the runs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx := context.Background()
	w := &kafka.Writer{Addr: kafka.TCP(*addr), Topic: "produce", BatchSize: 1, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireOne}
	defer w.Close()
	if err := prefill(ctx, *addr, *fill); err != nil {
		return fmt.Errorf("fill \"consume\": %w", err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{*addr}, Topic: "consume", MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	var seq atomic.Int64
	produce := func(worker int) error {
		n := seq.Add(1)
		// Distinct values: the context writer tells records apart by
		// their first bytes.
		v := "order " + strconv.Itoa(worker) + "." + strconv.FormatInt(n, 10)
		return w.WriteMessages(ctx, kafka.Message{Key: []byte(strconv.Itoa(worker)), Value: []byte(v)})
	}
	consume := func(int) error {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return err
		}
		if m.Offset >= int64(*fill)-1 {
			return r.SetOffset(0)
		}
		return nil
	}
	if err := produce(0); err != nil {
		return fmt.Errorf("kafka-produce: %w", err)
	}
	if err := consume(0); err != nil {
		return fmt.Errorf("kafka-consume: %w", err)
	}
	fmt.Println("listening on -")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) != 3 || f[0] != "run" {
			return fmt.Errorf("stdin: want \"run DURATION KIND\", got %q", in.Text())
		}
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return fmt.Errorf("stdin: %w", err)
		}
		call, callers := produce, *workers
		switch f[2] {
		case "kafka-produce":
		case "kafka-consume":
			call, callers = consume, 1
		default:
			return fmt.Errorf("stdin: unknown kind %q", f[2])
		}
		var n, errs atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		end := start.Add(d)
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					if err := call(i); err != nil {
						if errs.Add(1) == 1 {
							fmt.Fprintln(os.Stderr, "kafkaload:", f[2]+":", err)
						}
					} else {
						n.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		fmt.Printf("calls=%d errors=%d seconds=%.3f\n", n.Load(), errs.Load(), time.Since(start).Seconds())
	}
	return in.Err()
}

// prefill writes n messages to "consume", 1000 a call, with a Writer of
// its own.
func prefill(ctx context.Context, addr string, n int) error {
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "consume", BatchSize: 1000, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireOne}
	defer w.Close()
	batch := make([]kafka.Message, 0, 1000)
	for i := range n {
		batch = append(batch, kafka.Message{Key: []byte("k"), Value: []byte("stock " + strconv.Itoa(i))})
		if len(batch) == cap(batch) || i == n-1 {
			if err := w.WriteMessages(ctx, batch...); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}
