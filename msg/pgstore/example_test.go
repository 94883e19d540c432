package pgstore_test

import (
	"context"
	"log"
	"time"

	"github.com/alknet/alknet/msg"
	"github.com/alknet/alknet/msg/pgstore"
)

// Nodes behind one name open the same database; a long-poll on one node returns when
// another accepts a delivery. (Compiled, not run: it needs a server.)
func ExampleOpen() {
	ctx := context.Background()
	dsn := "host=/run/postgresql dbname=alknet sslmode=disable" // from the node's postgres_dsn_file
	s, err := pgstore.Open(ctx, dsn, pgstore.Options{Schema: "alknet_msg"})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	const mailbox = "mailbox"
	wake, cancel, err := s.Notify(ctx, mailbox)
	if err != nil {
		log.Fatal(err)
	}
	defer cancel()
	envs, next, err := s.List(ctx, mailbox, "", 100, 0, time.Now())
	if err != nil {
		log.Fatal(err)
	}
	if len(envs) == 0 {
		select {
		case <-wake: // a Put on any node sharing the database
			envs, _, err = s.List(ctx, mailbox, next, 100, 0, time.Now())
		case <-time.After(60 * time.Second):
		}
	}
	_ = envs
	_ = msg.Quota{}
}
