package control

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRegistryMatchCountAndValidation(t *testing.T) {
	r := NewRegistry([]string{"eu-west-2"}, 1)
	f, err := r.Add(Fault{Target: "aws:ec2:*", Kind: KindThrottle, Count: 2})
	require.NoError(t, err)
	assert.Equal(t, 1.0, f.Rate, "omitted rate means always")
	assert.Len(t, r.Hit("aws:ec2:CopyImage"), 1)
	assert.Empty(t, r.Hit("aws:route53:GetChange"))
	assert.Len(t, r.Hit("aws:ec2:DescribeImages"), 1)
	assert.Empty(t, r.Hit("aws:ec2:CopyImage"), "count 2 is used up")
	assert.Empty(t, r.List())

	_, err = r.Add(Fault{Target: "aws:ec2:*", Kind: KindLatency})
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "latencyMs", fe.Field)

	var removed []string
	r.Handle("mongo:", Hooks{Add: func(Fault) error { return nil }, Remove: func(id string) error { removed = append(removed, id); return nil }})
	m, err := r.Add(Fault{Target: "mongo:rs0:27017", Kind: "down"})
	require.NoError(t, err)
	require.NoError(t, r.Clear())
	assert.Equal(t, []string{m.ID}, removed)

	assert.True(t, Matches("aws:*", "aws:route53:ChangeResourceRecordSets"))
	assert.False(t, Matches("aws:ec2:CopyImage", "aws:ec2:CopyImages"))
}

func TestAfterLetsCallsThroughThenFires(t *testing.T) {
	r := NewRegistry([]string{"eu-west-2"}, 1)
	f, err := r.Add(Fault{Target: "aws:route53:ChangeResourceRecordSets", Kind: KindDenied, After: 2, Count: 1})
	require.NoError(t, err)
	assert.Equal(t, 2, f.After)
	for i := range 2 {
		assert.Empty(t, r.Hit("aws:route53:ChangeResourceRecordSets"), "call %d is let through", i+1)
	}
	assert.Empty(t, r.Hit("aws:route53:GetChange"), "other calls neither fire nor count")
	require.Len(t, r.List(), 1)
	assert.Equal(t, 0, r.List()[0].Fired, "calls let through are not firings")
	hit := r.Hit("aws:route53:ChangeResourceRecordSets")
	require.Len(t, hit, 1, "the third call fires")
	assert.Equal(t, KindDenied, hit[0].Kind)
	assert.Equal(t, 1, hit[0].Fired)
	assert.Empty(t, r.Hit("aws:route53:ChangeResourceRecordSets"), "count 1 is used up")
	assert.Empty(t, r.List())

	// Without a count it fires on every call after the first After, at Rate.
	_, err = r.Add(Fault{Target: "aws:ec2:mutating", Kind: KindError, After: 1})
	require.NoError(t, err)
	assert.Empty(t, r.Hit("aws:ec2:CopyImage"))
	assert.Empty(t, r.Hit("aws:ec2:DescribeImages"), "a read is not a mutating call")
	for range 3 {
		assert.Len(t, r.Hit("aws:ec2:CreateTags"), 1)
	}
	assert.Equal(t, 3, r.List()[0].Fired)
	require.NoError(t, r.Clear())

	// A state-like question (app health) sees the fault only once it is armed.
	_, err = r.Add(Fault{Target: "app:eu-west-2", Kind: KindUnhealthy, After: 1})
	require.NoError(t, err)
	assert.Empty(t, r.Active("app:eu-west-2"))
	assert.Empty(t, r.Hit("app:eu-west-2"))
	assert.Len(t, r.Active("app:eu-west-2"), 1)
	assert.Len(t, r.Hit("app:eu-west-2"), 1)
}

func TestMutatingTargets(t *testing.T) {
	for _, c := range []struct {
		target string
		want   bool
	}{
		{"aws:ec2:CopyImage", true},
		{"aws:ec2:CreateImage", true},
		{"aws:ec2:CreateTags", true},
		{"aws:ec2:ModifyImageAttribute", true},
		{"aws:ec2:RunInstances", true},
		{"aws:ec2:DeregisterImage", true},
		{"aws:ec2:DescribeImages", false},
		{"aws:ec2:GetConsoleOutput", false},
		{"aws:route53:DescribeImages", false},
		{"aws:route53:CopyImage", false}, // another service's pattern
	} {
		assert.Equal(t, c.want, Matches("aws:ec2:mutating", c.target), c.target)
	}
	for _, c := range []struct {
		target string
		want   bool
	}{
		{"aws:route53:ChangeResourceRecordSets", true},
		{"aws:route53:CreateHostedZone", true},
		{"aws:route53:DeleteHostedZone", true},
		{"aws:route53:CreateHealthCheck", true},
		{"aws:route53:UpdateHealthCheck", true},
		{"aws:route53:ChangeTagsForResource", true},
		{"aws:route53:ListResourceRecordSets", false},
		{"aws:route53:GetChange", false},
		{"aws:route53:GetHealthCheckStatus", false},
		{"aws:route53:", false},
		{"aws:ec2:ChangeResourceRecordSets", false},
	} {
		assert.Equal(t, c.want, Matches("aws:route53:mutating", c.target), c.target)
	}
	assert.False(t, Matches("aws:ec2:mutating", "app:eu-west-2"))
	assert.True(t, Matches("aws:ec2:mutating", "aws:ec2:mutating"), "the pattern itself reads as an operation name")
	assert.True(t, Matches("aws:ec2:*", "aws:ec2:DescribeImages"), "* still covers reads")

	r := NewRegistry(nil, 1)
	_, err := r.Add(Fault{Target: "aws:route53:mutating", Kind: KindDenied})
	require.NoError(t, err)
	assert.Len(t, r.Hit("aws:route53:ChangeResourceRecordSets"), 1)
	assert.Empty(t, r.Hit("aws:route53:GetChange"))
}

func TestNewFieldsValidated(t *testing.T) {
	r := NewRegistry([]string{"eu-west-2"}, 1)
	r.Handle("mongo:", Hooks{Add: func(Fault) error { return nil }})
	for _, c := range []struct {
		f     Fault
		field string
	}{
		{Fault{Target: "aws:ec2:*", Kind: KindDenied, After: -1}, "after"},
		{Fault{Target: "aws:ec2:*", Kind: KindThrottle, Command: "replSetReconfig"}, "command"},
		{Fault{Target: "aws:ec2:*", Kind: KindThrottle, Code: 13}, "code"},
		{Fault{Target: "aws:ec2:*", Kind: KindCommandError, Command: "replSetReconfig"}, "kind"},
		{Fault{Target: "app:eu-west-2", Kind: KindDenied}, "kind"},
		{Fault{Target: "aws:*:mutating", Kind: KindDenied}, "target"},
		{Fault{Target: "mongo:rs0:*", Kind: KindCommandError}, "command"},
		{Fault{Target: "mongo:rs0:*", Kind: KindCommandError, Command: "replSetReconfig", Code: -1}, "code"},
		{Fault{Target: "mongo:rs0:*", Kind: KindCommandError, Command: "replSetReconfig", Code: 1 << 31}, "code"},
		{Fault{Target: "mongo:rs0:*", Kind: KindCommandError, Command: "replSetReconfig", After: -2}, "after"},
		{Fault{Target: "mongo:rs0:*", Kind: KindCommandError, Command: "replSetReconfig", Rate: 2}, "rate"},
		{Fault{Target: "mongo:rs0:*", Kind: "down", Command: "replSetReconfig"}, "command"},
		{Fault{Target: "mongo:rs0:*", Kind: "down", Code: 13}, "code"},
		{Fault{Target: "mongo:rs0:*", Kind: "down", After: 1}, "after"},
		{Fault{Target: "mongo:rs0:*", Kind: "down", Count: 1}, "count"},
	} {
		_, err := r.Add(c.f)
		var fe *FieldError
		require.ErrorAs(t, err, &fe, "%+v", c.f)
		assert.Equal(t, c.field, fe.Field, "%+v: %v", c.f, err)
	}
	assert.Empty(t, r.List())

	// A command-error is a request fault: it takes after and count.
	f, err := r.Add(Fault{Target: "mongo:rs0:*", Kind: KindCommandError, Command: "replSetReconfig", After: 1, Count: 2})
	require.NoError(t, err)
	assert.Equal(t, 2, f.Remaining)
}

func TestHookedFaultFires(t *testing.T) {
	r := NewRegistry(nil, 1)
	var removed []string
	r.Handle("mongo:", Hooks{
		Add: func(f Fault) error {
			if f.Command == "bogus" {
				return &FieldError{"command", "no such command"}
			}
			if f.Command == "fireEarly" {
				r.Fire(f.ID) // the owner fires it before Add has stored it
			}
			return nil
		},
		Remove: func(id string) error { removed = append(removed, id); return nil },
	})
	_, err := r.Add(Fault{Target: "mongo:rs0:*", Kind: KindCommandError, Command: "bogus"})
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "command", fe.Field, "the owner's field error is kept")

	f, err := r.Add(Fault{Target: "mongo:rs0:*", Kind: KindCommandError, Command: "replSetReconfig", Count: 2})
	require.NoError(t, err)
	r.Fire(f.ID)
	require.Len(t, r.List(), 1)
	assert.Equal(t, 1, r.List()[0].Fired)
	assert.Equal(t, 1, r.List()[0].Remaining)
	r.Fire(f.ID)
	assert.Empty(t, r.List(), "a used-up count fault goes away")
	assert.Equal(t, []string{f.ID}, removed, "and its owner is told")
	r.Fire("f-unknown") // ignored

	e, err := r.Add(Fault{Target: "mongo:rs0:*", Kind: KindCommandError, Command: "fireEarly"})
	require.NoError(t, err)
	require.Len(t, r.List(), 1)
	assert.Equal(t, e.ID, r.List()[0].ID)
	assert.Equal(t, 1, r.List()[0].Fired, "a firing reported while adding counts")
}

func TestControlAPITakesTheNewFields(t *testing.T) {
	r := NewRegistry(nil, 1)
	r.Handle("mongo:", Hooks{Add: func(Fault) error { return nil }})
	hs := httptest.NewServer(NewHandler(Sources{Faults: r}))
	t.Cleanup(hs.Close)
	c := &Client{BaseURL: hs.URL}
	ctx := t.Context()

	// The JSON names as documented.
	resp, err := http.Post(hs.URL+"/_sandbox/faults", "application/json", strings.NewReader(
		`{"target":"mongo:rs0:*","kind":"command-error","command":"replSetReconfig","code":103,"after":1,"count":1}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var got Fault
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	assert.Equal(t, "replSetReconfig", got.Command)
	assert.Equal(t, 103, got.Code)
	assert.Equal(t, 1, got.After)

	f, err := c.AddFault(ctx, Fault{Target: "aws:ec2:mutating", Kind: KindDenied, After: 3})
	require.NoError(t, err)
	b, err := json.Marshal(f)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"after":3`)
	assert.NotContains(t, string(b), `"command"`)

	for _, bad := range []struct {
		f     Fault
		field string
	}{
		{Fault{Target: "aws:ec2:mutating", Kind: KindDenied, After: -1}, "after"},
		{Fault{Target: "mongo:rs0:*", Kind: KindCommandError}, "command"},
		{Fault{Target: "aws:ec2:*", Kind: KindError, Code: 13}, "code"},
	} {
		_, err := c.AddFault(ctx, bad.f)
		var ae *APIError
		require.True(t, errors.As(err, &ae), "%v", err)
		assert.Equal(t, http.StatusBadRequest, ae.Status)
		assert.Equal(t, bad.field, ae.Field, ae.Error())
	}
}

// A GameDay clears its own faults through the control API and leaves everyone else's,
// including a simulator's (the MongoDB hook hears only about the owner's); a bad owner
// label is refused naming the field.
func TestFaultOwnersClearOnlyTheirOwn(t *testing.T) {
	r := NewRegistry([]string{"eu-west-2"}, 1)
	var removed []string
	r.Handle("mongo:", Hooks{Add: func(Fault) error { return nil }, Remove: func(id string) error { removed = append(removed, id); return nil }})
	srv := httptest.NewServer(NewHandler(Sources{Faults: r}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL}
	ctx := t.Context()
	mine1, err := c.AddFault(ctx, Fault{Target: "app:eu-west-2", Kind: KindUnhealthy, Owner: "gameday/g1"})
	require.NoError(t, err)
	mine2, err := c.AddFault(ctx, Fault{Target: "mongo:rs0:27017", Kind: "down", Owner: "gameday/g1"})
	require.NoError(t, err)
	theirs, err := c.AddFault(ctx, Fault{Target: "aws:route53:*", Kind: KindThrottle, Owner: "gameday/g2"})
	require.NoError(t, err)
	person, err := c.AddFault(ctx, Fault{Target: "aws:ec2:*", Kind: KindThrottle})
	require.NoError(t, err)

	got, err := c.ListFaultsOf(ctx, "gameday/g1")
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{mine1.ID, mine2.ID}, ids(got))
	require.NoError(t, c.ClearFaultsOf(ctx, "gameday/g1"))
	left, err := c.ListFaults(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{theirs.ID, person.ID}, ids(left), "another owner's fault and a person's survive")
	assert.Equal(t, []string{mine2.ID}, removed, "the simulator hears of the owner's fault only")
	none, err := c.ListFaultsOf(ctx, "gameday/g1")
	require.NoError(t, err)
	assert.Empty(t, none)

	_, err = c.AddFault(ctx, Fault{Target: "app:eu-west-2", Kind: KindUnhealthy, Owner: "bad owner; rm -rf"})
	require.ErrorContains(t, err, "owner")
	left, _ = c.ListFaults(ctx)
	assert.Len(t, left, 2, "a refused fault adds nothing")
}

func ids(fs []Fault) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID)
	}
	return out
}

// A caller may name its fault (a GameDay does, so a retried injection finds the fault it
// added); a name stands for one active fault at a time and must fit in a URL path.
func TestRegistryCallerChosenIDs(t *testing.T) {
	r := NewRegistry([]string{"eu-west-2"}, 1)
	f, err := r.Add(Fault{ID: "gameday-run1-0", Target: "app:eu-west-2", Kind: KindUnhealthy})
	require.NoError(t, err)
	assert.Equal(t, "gameday-run1-0", f.ID)
	_, err = r.Add(Fault{ID: "gameday-run1-0", Target: "app:eu-west-2", Kind: KindError})
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "id", fe.Field)
	require.Len(t, r.List(), 1)
	_, err = r.Add(Fault{ID: "a/b", Target: "app:eu-west-2", Kind: KindUnhealthy})
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "id", fe.Field)
	ok, err := r.Delete("gameday-run1-0")
	require.NoError(t, err)
	require.True(t, ok)
	_, err = r.Add(Fault{ID: "gameday-run1-0", Target: "app:eu-west-2", Kind: KindUnhealthy})
	require.NoError(t, err, "an id is free again once its fault is gone")
}
