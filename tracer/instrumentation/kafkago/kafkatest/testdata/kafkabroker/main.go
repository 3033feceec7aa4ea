// Command kafkabroker runs an in-process Kafka broker that speaks the real
// Kafka protocol (franz-go's kfake) on 127.0.0.1, for the kafka-go tests:
// there is no Kafka broker package on the test machines. It prints
// "broker ADDR" once it listens and runs until killed.
package main

import (
	"flag"
	"fmt"
	"log"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	topics := flag.String("topics", "orders", "comma-separated topics to create, one partition each")
	flag.Parse()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, strings.Split(*topics, ",")...))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println("broker", c.ListenAddrs()[0])
	select {}
}
