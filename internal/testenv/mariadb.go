package testenv

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/mariadbpair"
)

// StartMariaDBPair starts two real mariadbd processes, a source and a target replicating
// from it with GTIDs (internal/mariadbpair), in the test's temp dir; they are stopped by
// pid when the test ends. Without mariadbd the test is skipped on a developer's machine
// and fails in CI (CI=true), where a skip would pass for the wrong reason.
func StartMariaDBPair(t testing.TB) *mariadbpair.Pair {
	t.Helper()
	if _, _, err := mariadbpair.Find(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skipf("%v (in CI this fails)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := mariadbpair.Start(ctx, mariadbpair.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("start mariadb pair: %v", err)
	}
	t.Cleanup(p.Stop)
	return p
}

// MariaDBAdmin opens an admin connection pool to s, closed when the test ends: tests read
// the servers' own state through it, never ferry's view.
func MariaDBAdmin(t testing.TB, s *mariadbpair.Server) *sql.DB {
	t.Helper()
	db, err := s.Admin()
	if err != nil {
		t.Fatalf("open %s: %v", s.Name, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}
