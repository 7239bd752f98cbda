package server

import (
	"fmt"
	"strings"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/spec"
)

// listQuery builds ListMigrations' visibility query from the filters. Values come from
// enums, or are free text checked against a safe set and then quoted; see filterValue.
// The query always starts with the FerryKind clause, so it lists ferry's migrations only.
func listQuery(r *ferryv1.ListMigrationsRequest) (string, error) {
	// Every registered kind, so a kind that lands is listed without an edit here.
	kinds := make([]string, len(spec.Kinds))
	for i, k := range spec.Kinds {
		kinds[i] = quote(k.Name)
	}
	q := []string{"FerryKind IN (" + strings.Join(kinds, ", ") + ")"}
	if k := r.GetKind(); k != ferryv1.MigrationKind_MIGRATION_KIND_UNSPECIFIED {
		name := kindName(k)
		if name == "" {
			return "", invalidArgument("kind", fmt.Sprintf("%d is not a migration kind (see `ferry list --help`)", k))
		}
		q = append(q, "FerryKind = "+quote(name))
	}
	if st := r.GetState(); st != ferryv1.MigrationState_MIGRATION_STATE_UNSPECIFIED {
		name := stateName(st)
		if name == "" {
			return "", invalidArgument("state", fmt.Sprintf("%d is not a migration state (see `ferry list --help`)", st))
		}
		q = append(q, "FerryState = "+quote(name))
	}
	if reg := r.GetRegion(); reg != "" {
		if err := filterValue("region", reg, "a region such as eu-west-1", isRegionChar); err != nil {
			return "", err
		}
		// FerryTargetRegions is a KeywordList: "=" matches an element. The legacy comma-joined
		// Keyword is asked too, for migrations started before it (see workflows/api.go).
		q = append(q, "(FerrySourceRegion = "+quote(reg)+" OR FerryTargetRegions = "+quote(reg)+" OR FerryTargetRegion = "+quote(reg)+")")
	}
	if who := r.GetInitiator(); who != "" {
		if err := filterValue("initiator", who, "an identity such as alice or alice@example.com", isIdentityChar); err != nil {
			return "", err
		}
		q = append(q, "FerryInitiator = "+quote(who))
	}
	if r.GetAwaitingApproval() {
		q = append(q, "FerryAwaitingApproval = true")
	}
	// No ORDER BY: SQL visibility stores (the embedded SQLite) refuse it, and every store
	// already lists newest first.
	return strings.Join(q, " AND "), nil
}

// maxFilterLen bounds a free-text filter; identities and regions are far shorter.
const maxFilterLen = 256

// filterValue refuses a filter with a character outside a safe set, naming the field.
// Temporal's list query is SQL-like: a string literal ends at its quote, backslash escapes
// the next character (MySQL-style), and "--" or "#" start a comment. The old quoting
// escaped ' but not \, so a value ending in \' closed the literal itself and the rest of
// the value became query syntax: `\' OR WorkflowType = "X" -- ` listed other
// applications' workflows. Escaping every special character right depends on the
// visibility store's parser; refusing them does not, and no region or identity needs
// them. quote still escapes both, in case the sets ever widen.
func filterValue(field, v, example string, ok func(rune) bool) error {
	if len(v) > maxFilterLen {
		return invalidArgument(field, fmt.Sprintf("is %d bytes long; the limit is %d", len(v), maxFilterLen))
	}
	for _, r := range v {
		if !ok(r) {
			return invalidArgument(field, fmt.Sprintf("%q holds %q, which a filter may not contain: give %s (letters, digits and %s only)",
				v, r, example, safePunct[field]))
		}
	}
	return nil
}

var safePunct = map[string]string{"region": "- _ .", "initiator": "space - _ . @ : + / ="}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

func isRegionChar(r rune) bool { return isAlnum(r) || strings.ContainsRune("-_.", r) }

func isIdentityChar(r rune) bool { return isAlnum(r) || strings.ContainsRune(" -_.@:+/=", r) }

// quote makes a visibility-query string literal: backslash first, then the quote, so an
// escape the value brings cannot swallow the one quote adds.
func quote(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}
