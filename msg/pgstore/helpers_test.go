package pgstore

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// dsnEnv names the test-only variable that points the tests at a PostgreSQL server.
const dsnEnv = "ALKNET_TEST_POSTGRES_DSN"

// testDSN returns the server's DSN or skips the test.
func testDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(dsnEnv)
	if dsn == "" {
		t.Skip("no PostgreSQL: set ALKNET_TEST_POSTGRES_DSN (.ci/run starts one)")
	}
	return dsn
}

// newSchema names a fresh schema for one test and drops it when the test ends (after the
// stores, which close in cleanups registered later).
func newSchema(t testing.TB, dsn string) string {
	t.Helper()
	schema := "msgtest_" + strings.ToLower(rand.Text())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return schema
}

// openStore opens a Store on schema and closes it at cleanup.
func openStore(t testing.TB, dsn, schema string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn, Options{Schema: schema, MaxConns: 8})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
