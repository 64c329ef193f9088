// trkfront: the compiled front of the tracking hot path. It answers GET|HEAD /c/<token>
// (302 to the URL signed into the token) and /o/<token>.gif (the pixel) exactly as
// altcraft/services/trk/app.py does, and appends each event to the journal of the Python
// tracking process (run/trk/<process>/<pid>.<segment>.jsonl) whose relay publishes it to
// RabbitMQ. Everything else stays with the Python process behind the same nginx.
//
//	trkfront [--config main.json] [--process trkaction] [--listen host:port]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const (
	headerTimeout = 10 * time.Second // reading a request's head once it began
	idleTimeout   = 75 * time.Second // a kept-alive connection waiting for its next request
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	flags := flag.NewFlagSet("trkfront", flag.ContinueOnError)
	flags.Usage = func() {
		fmt.Fprintf(flags.Output(), "usage: trkfront [--config main.json] [--process trkaction|trkimage] [--listen host:port]\n\n"+
			"Answers /c/<token> and /o/<token>.gif as the Python tracking process does and writes\n"+
			"each event to that process's journal, which its relay publishes to RabbitMQ.\n\n")
		flags.PrintDefaults()
	}
	configFile := flags.String("config", "", "main.json (default: $AKD_CONFIG, else "+defaultConfigPath+")")
	process := flags.String("process", "trkaction", "the tracking process whose routes, address and journal directory this front takes")
	listen := flags.String("listen", "", "host:port to listen on instead of PROCESSES.<process>.IP/PORT")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	log.SetFlags(log.LstdFlags | log.LUTC)
	config, err := LoadConfig(configPath(*configFile), *process)
	if err != nil {
		log.Printf("trkfront: %v", err)
		return 2
	}
	if *listen != "" {
		config.Listen = *listen
	}
	journal, err := OpenJournal(config.JournalDir, segmentBytes)
	if err != nil {
		log.Printf("trkfront: %v", err)
		return 1
	}
	listener, err := net.Listen("tcp", config.Listen)
	if err != nil {
		log.Printf("trkfront: cannot listen on %s: %v", config.Listen, err)
		journal.Close()
		return 1
	}
	serving := serveFront(listener, NewFront(config, journal), idleTimeout, headerTimeout)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	log.Printf("trkfront: listening on %s, journal %s (pid %d)", listener.Addr(), config.JournalDir, os.Getpid())
	code := 0
	select {
	case <-stop:
	case err := <-serving.failed:
		log.Printf("trkfront: %v", err)
		code = 1
	}
	// answers in progress finish: their events are written first
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	serving.Shutdown(ctx)
	cancel()
	if err := journal.Close(); err != nil {
		log.Printf("trkfront: closing the journal: %v", err)
		code = 1
	}
	return code
}
