package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"connectrpc.com/connect"

	"github.com/ferryhq/ferry/gen/ferry/v1/ferryv1connect"
)

// Roles. An identity may hold several.
const (
	RoleViewer   = "viewer"   // get, list, watch, plan
	RoleOperator = "operator" // start, pause, resume, cancel, rollback (and everything a viewer can)
	RoleApprover = "approver" // approve (and everything a viewer can)
)

// procedureRoles says which roles may call each RPC. A procedure missing here is refused,
// so a new RPC is closed until someone decides who may call it.
var procedureRoles = map[string][]string{
	ferryv1connect.MigrationServicePlanMigrationProcedure:     {RoleViewer, RoleOperator, RoleApprover},
	ferryv1connect.MigrationServiceGetMigrationProcedure:      {RoleViewer, RoleOperator, RoleApprover},
	ferryv1connect.MigrationServiceListMigrationsProcedure:    {RoleViewer, RoleOperator, RoleApprover},
	ferryv1connect.MigrationServiceWatchMigrationProcedure:    {RoleViewer, RoleOperator, RoleApprover},
	ferryv1connect.MigrationServiceStartMigrationProcedure:    {RoleOperator},
	ferryv1connect.MigrationServicePauseMigrationProcedure:    {RoleOperator},
	ferryv1connect.MigrationServiceResumeMigrationProcedure:   {RoleOperator},
	ferryv1connect.MigrationServiceCancelMigrationProcedure:   {RoleOperator},
	ferryv1connect.MigrationServiceRollbackMigrationProcedure: {RoleOperator},
	ferryv1connect.MigrationServiceApproveStepProcedure:       {RoleApprover},
	// GameDays: operators start them (and stop them: PressGameDay checks the role for a
	// stop); every player presses detect and mitigate, whatever their role.
	ferryv1connect.GameDayServiceStartGameDayProcedure:     {RoleOperator},
	ferryv1connect.GameDayServiceGetGameDayProcedure:       {RoleViewer, RoleOperator, RoleApprover},
	ferryv1connect.GameDayServiceGetGameDayReportProcedure: {RoleViewer, RoleOperator, RoleApprover},
	ferryv1connect.GameDayServicePressGameDayProcedure:     {RoleViewer, RoleOperator, RoleApprover},
}

// Principal is an authenticated caller.
type Principal struct {
	Identity string   `json:"identity"`
	Roles    []string `json:"roles"`
}

// TokenEntry maps one bearer token, or one client certificate's common name (mTLS), to a
// principal, as stored in the token file.
type TokenEntry struct {
	Token string `json:"token,omitempty"`
	// CertCommonName authenticates a client certificate verified against the server's
	// --client-ca whose subject CN is this value (instead of a token).
	CertCommonName string `json:"certCommonName,omitempty"`
	Principal
	// Profile names the entry for the CLI's --as flag (ferry dev's "operator" and
	// "approver"); the server ignores it.
	Profile string `json:"profile,omitempty"`
}

// Tokens is the set of accepted bearer tokens.
type Tokens struct {
	entries []TokenEntry
}

type tokenFile struct {
	Tokens []TokenEntry `json:"tokens"`
}

// LoadTokens reads a token file: {"tokens":[{"token":"...","identity":"alice","roles":["operator"]}]}.
func LoadTokens(path string) (*Tokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read token file: %w", err)
	}
	var f tokenFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("parse token file %s: %w", path, err)
	}
	for i, e := range f.Tokens {
		switch {
		case e.Token == "" && e.CertCommonName == "":
			return nil, fmt.Errorf("token file %s: tokens[%d] has neither token nor certCommonName", path, i)
		case e.Token != "" && len(e.Token) < 16:
			return nil, fmt.Errorf("token file %s: tokens[%d].token is shorter than 16 characters", path, i)
		}
		if e.Identity == "" {
			return nil, fmt.Errorf("token file %s: tokens[%d].identity is empty", path, i)
		}
		for _, r := range e.Roles {
			if r != RoleViewer && r != RoleOperator && r != RoleApprover {
				return nil, fmt.Errorf("token file %s: tokens[%d].roles: unknown role %q (use viewer, operator or approver)", path, i, r)
			}
		}
	}
	return &Tokens{entries: f.Tokens}, nil
}

// NewTokens builds a token set in memory (tests).
func NewTokens(entries ...TokenEntry) *Tokens { return &Tokens{entries: entries} }

// DevPlayers are the GameDay players `ferry dev` makes tokens for (viewers, picked with
// --as alice): the example scenarios' teams name them, so one person can play every part.
var DevPlayers = []string{"alice", "bob", "carol"}

// EnsureDevTokens creates (once) or reads the token file in dataDir: a local operator and a
// local approver, so the four-eyes flow can be tried alone, and the GameDay players. A
// file from before the players existed gains them.
func EnsureDevTokens(dataDir, user string) (*Tokens, error) {
	path := DevTokenFile(dataDir)
	var f tokenFile
	if b, err := os.ReadFile(path); errors.Is(err, os.ErrNotExist) {
		// The local operator may approve too, so approving one's own migration is refused by
		// the four-eyes rule itself (which is what a laptop user should see), not by a role.
		f.Tokens = []TokenEntry{
			{Token: newToken(), Profile: "operator", Principal: Principal{Identity: user, Roles: []string{RoleOperator, RoleApprover, RoleViewer}}},
			{Token: newToken(), Profile: "approver", Principal: Principal{Identity: user + "-approver", Roles: []string{RoleApprover, RoleViewer}}},
		}
	} else if err != nil {
		return nil, fmt.Errorf("read dev tokens: %w", err)
	} else if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("parse dev tokens %s: %w", path, err)
	}
	changed := len(f.Tokens) == 2 && f.Tokens[0].Profile == "operator"
	for _, p := range DevPlayers {
		if !slices.ContainsFunc(f.Tokens, func(t TokenEntry) bool { return t.Profile == p }) {
			f.Tokens = append(f.Tokens, TokenEntry{Token: newToken(), Profile: p, Principal: Principal{Identity: p, Roles: []string{RoleViewer}}})
			changed = true
		}
	}
	if changed {
		b, _ := json.MarshalIndent(f, "", "  ")
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("write dev tokens: %w", err)
		}
	}
	return LoadTokens(path)
}

// DevTokenFile is where `ferry dev` keeps its tokens; the CLI reads it when FERRY_TOKEN is
// unset.
func DevTokenFile(dataDir string) string { return filepath.Join(dataDir, "tokens.json") }

func newToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "fy_" + hex.EncodeToString(b)
}

func (t *Tokens) lookup(token string) (Principal, bool) {
	if t == nil || token == "" {
		return Principal{}, false
	}
	for _, e := range t.entries {
		if e.Token != "" && subtle.ConstantTimeCompare([]byte(e.Token), []byte(token)) == 1 {
			return e.Principal, true
		}
	}
	return Principal{}, false
}

func (t *Tokens) lookupCert(cn string) (Principal, bool) {
	if t == nil || cn == "" {
		return Principal{}, false
	}
	for _, e := range t.entries {
		if e.CertCommonName == cn {
			return e.Principal, true
		}
	}
	return Principal{}, false
}

type certKey struct{}

// withClientCert records the common name of a client certificate the TLS handshake
// verified, for the auth interceptor (Connect's request does not expose TLS state).
func withClientCert(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
			cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
			r = r.WithContext(context.WithValue(r.Context(), certKey{}, cn))
		}
		next.ServeHTTP(w, r)
	})
}

type principalKey struct{}

// PrincipalFrom returns the authenticated caller.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// authInterceptor authenticates bearer tokens and authorises by role on every RPC, unary
// and streaming.
type authInterceptor struct{ tokens *Tokens }

func newAuthInterceptor(t *Tokens) *authInterceptor { return &authInterceptor{tokens: t} }

func (a *authInterceptor) authorize(ctx context.Context, procedure string, h interface{ Get(string) string }) (context.Context, error) {
	auth := h.Get("Authorization")
	token, hasToken := strings.CutPrefix(auth, "Bearer ")
	var p Principal
	var ok bool
	switch cn, _ := ctx.Value(certKey{}).(string); {
	case hasToken && token != "":
		if p, ok = a.tokens.lookup(token); !ok {
			return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("unknown bearer token"))
		}
	case cn != "":
		if p, ok = a.tokens.lookupCert(cn); !ok {
			return nil, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("client certificate %q is not in the token file (add an entry with certCommonName)", cn))
		}
	default:
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("missing bearer token: set FERRY_TOKEN or --token (ferry dev writes local tokens to .ferry/tokens.json), or present a client certificate"))
	}
	if rec := recordFrom(ctx); rec != nil {
		rec.identity = p.Identity // logged with the call's outcome, refused or not
	}
	allowed := procedureRoles[procedure]
	if !slices.ContainsFunc(p.Roles, func(r string) bool { return slices.Contains(allowed, r) }) {
		return nil, connect.NewError(connect.CodePermissionDenied,
			fmt.Errorf("%s (roles %v) may not call %s: it needs one of %v", p.Identity, p.Roles, procedure, allowed))
	}
	return context.WithValue(ctx, principalKey{}, p), nil
}

func (a *authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		ctx, err := a.authorize(ctx, req.Spec().Procedure, req.Header())
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (a *authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (a *authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := a.authorize(ctx, conn.Spec().Procedure, conn.RequestHeader())
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}
