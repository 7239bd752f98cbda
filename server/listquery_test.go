package server

import (
	"strings"
	"testing"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/spec"
)

// TestQuoteEscapesBackslashFirst pins the literal quoting: a value's own backslash must
// not escape the quote that closes the literal.
func TestQuoteEscapesBackslashFirst(t *testing.T) {
	for in, want := range map[string]string{
		`eu-west-1`: `'eu-west-1'`,
		`a\`:        `'a\\'`,
		`a\'b`:      `'a\\\'b'`,
		`it's`:      `'it\'s'`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestListQueryRefusesUnsafeFilters(t *testing.T) {
	for _, r := range []*ferryv1.ListMigrationsRequest{
		{Region: `eu-west-1\`}, {Initiator: `\' OR 1=1 -- `}, {Initiator: "a\nb"}, {Region: strings.Repeat("a", 300)},
		{Kind: ferryv1.MigrationKind(99)}, {State: ferryv1.MigrationState(99)},
	} {
		if q, err := listQuery(r); err == nil {
			t.Errorf("listQuery(%v) = %s; want an error", r, q)
		}
	}
	q, err := listQuery(&ferryv1.ListMigrationsRequest{Region: "eu-west-1", Initiator: "ferry-dev@host:123"})
	if err != nil || !strings.Contains(q, "FerryInitiator = 'ferry-dev@host:123'") {
		t.Fatalf("ordinary filters: %s, %v", q, err)
	}
}

// Every registered kind is listed: a kind that lands must not be missing from `ferry list`
// (the list was once four names written out, and a new kind's migrations never showed).
func TestListQueryNamesEveryKind(t *testing.T) {
	q, err := listQuery(&ferryv1.ListMigrationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range spec.Kinds {
		if !strings.Contains(q, quote(k.Name)) {
			t.Errorf("the list query %s leaves out kind %s", q, k.Name)
		}
	}
}
