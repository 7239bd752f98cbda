package server

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/internal/apiclient"
	"github.com/ferryhq/ferry/spec"
)

// The examples are what the README tells people to run: each passes the default policy.
func TestExamplesPassTheDefaultPolicy(t *testing.T) {
	for _, f := range []string{"dns-shift.yaml", "ami-share.yaml", "mongo-primary-move.yaml", "region-move.yaml"} {
		m, err := spec.ParseFile(filepath.Join("..", "examples", f))
		if err != nil {
			t.Fatal(err)
		}
		st, err := buildStart(m, "alice", "")
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := DefaultPolicy().check(st.kind.Name, st.input); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// A spec that asks for fewer approvals than the server's policy is refused at
// StartMigration with InvalidArgument naming the rule and the field that satisfies it,
// before anything reaches Temporal (the handler here has no Temporal at all).
func TestStartRefusedByPolicy(t *testing.T) {
	tokens := NewTokens(TokenEntry{Token: "tok-alice-operator-0001", Principal: Principal{Identity: "alice", Roles: []string{RoleOperator}}})
	pol := DefaultPolicy()
	pol.MinApprovers = map[string]int{"*": 1, "dns-shift": 2}
	api := httptest.NewServer(Handler(nil, Options{Tokens: tokens, Policy: &pol}))
	defer api.Close()
	alice := apiclient.New(api.Client(), api.URL, "tok-alice-operator-0001", false)
	dns := func(edit string) *ferryv1.MigrationSpec {
		b, err := os.ReadFile(filepath.Join("..", "examples", "dns-shift.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := spec.Parse([]byte(edit+strings.Replace(string(b), "  requiredApprovers: 1", "  requiredApprovers: 2", 1)), ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	cases := map[string]struct {
		spec *ferryv1.MigrationSpec
		want []string
	}{
		"one approver where the policy asks two": {mod(dns(""), func(m *ferryv1.MigrationSpec) { m.Approvals.RequiredApprovers = 1 }),
			[]string{"minApprovers", "approvals.requiredApprovers: 2"}},
		"self-approval": {mod(dns(""), func(m *ferryv1.MigrationSpec) { m.Approvals.AllowSelfApproval = true }),
			[]string{"allowSelfApproval", "remove it"}},
		"no approval before 50%": {mod(dns(""), func(m *ferryv1.MigrationSpec) { m.GetDnsShift().ApproveAt = []uint32{100} }),
			[]string{"dnsApproveBy", "at or below 50%"}},
		"no approval at all": {mod(dns(""), func(m *ferryv1.MigrationSpec) { m.GetDnsShift().ApproveAt = nil }),
			[]string{"dnsApproveBy"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := alice.StartMigration(context.Background(), connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: c.spec}))
			if connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
			for _, w := range append([]string{"approval policy"}, c.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not name %q", err.Error(), w)
				}
			}
		})
	}
	// A spec asking for more than the policy passes the check (and then needs Temporal,
	// which this handler lacks: anything but InvalidArgument shows it got past the policy).
	_, err := alice.StartMigration(context.Background(), connect.NewRequest(&ferryv1.StartMigrationRequest{
		Spec: mod(dns(""), func(m *ferryv1.MigrationSpec) { m.Approvals.RequiredApprovers = 3 })}))
	if connect.CodeOf(err) == connect.CodeInvalidArgument {
		t.Fatalf("more approvals than the policy asks were refused: %v", err)
	}
}

func mod(m *ferryv1.MigrationSpec, f func(m *ferryv1.MigrationSpec)) *ferryv1.MigrationSpec {
	f(m)
	return m
}

func TestLoadPolicy(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "policy.json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p, err := LoadPolicy(write(`{"minApprovers": {"*": 1, "region-move": 2}, "dnsApproveBy": 25, "primaryApproval": true}`))
	if err != nil || p.minApprovers("region-move") != 2 || p.minApprovers("dns-shift") != 1 || p.DNSApproveBy != 25 {
		t.Fatalf("%+v %v", p, err)
	}
	for body, want := range map[string]string{
		`{"minApprovers": {"dns": 2}}`:   `kind "dns"`,
		`{"minApprovers": {"*": 0}}`:     "must be 1..10",
		`{"dnsApproveBy": 150}`:          "must be 0..100",
		`{"minApprover": {"*": 2}}`:      "unknown field",
		`{"minApprovers": {"*": "two"}}`: "cannot unmarshal",
	} {
		if _, err := LoadPolicy(write(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", body, err, want)
		}
	}
}
