// Command altcraft-ferretdb runs FerretDB, a MongoDB-protocol server. The test
// harness (tests/harness/servers.sh) and the distribution's ferretdb role both
// build it. It embeds the FerretDB library instead of installing the upstream
// command, whose module lacks a generated version file and panics at start.
//
// The PostgreSQL URL may carry a password, so it can also come from the
// environment (FERRETDB_POSTGRESQL_URL) instead of the command line.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	handler := flag.String("handler", "sqlite", "storage engine: sqlite or postgresql")
	sqliteURL := flag.String("sqlite-url", "file:./data/", "SQLite directory URI (handler sqlite)")
	pgURL := flag.String("postgresql-url", os.Getenv("FERRETDB_POSTGRESQL_URL"),
		"PostgreSQL URL (handler postgresql; default $FERRETDB_POSTGRESQL_URL)")
	// A second listener for other hosts: TLS, and with a CA file every client must show a
	// certificate it signed (FerretDB on SQLite has no passwords of its own).
	listenTLS := flag.String("listen-tls", "", "TLS address to listen on (empty: none)")
	tlsCert := flag.String("listen-tls-cert-file", "", "server certificate (PEM) of the TLS listener")
	tlsKey := flag.String("listen-tls-key-file", "", "server key (PEM) of the TLS listener")
	tlsCA := flag.String("listen-tls-ca-file", "", "CA (PEM) that signs the clients' certificates")
	flag.Parse()

	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{
			TCP: *listen, TLS: *listenTLS,
			TLSCertFile: *tlsCert, TLSKeyFile: *tlsKey, TLSCAFile: *tlsCA,
		},
		Handler:       *handler,
		SQLiteURL:     *sqliteURL,
		PostgreSQLURL: *pgURL,
	})
	if err != nil {
		log.Fatalf("ferretdb: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	log.Printf("ferretdb listening on %s, TLS on %q (handler %s)", *listen, *listenTLS, *handler)
	f.Run(ctx)
	log.Print("ferretdb stopped")
}
