package control

import (
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
