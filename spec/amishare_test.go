package spec

import (
	"testing"

	"github.com/stretchr/testify/require"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/workflows"
)

func TestAMIExampleFile(t *testing.T) {
	m, err := ParseFile("../examples/ami-share.yaml")
	require.NoError(t, err)
	in, err := AMIShareInput(m, "alice")
	require.NoError(t, err)
	s := in.Spec
	require.Equal(t, "shop images to eu-west-2", in.Name)
	require.Equal(t, "alice", in.Initiator)
	require.Equal(t, workflows.ApprovalPolicy{RequiredApprovers: 1}, in.Approvals)
	require.Equal(t, "eu-west-1", s.SourceRegion)
	require.Equal(t, map[string]string{"app": "shop"}, s.ImageTags)
	require.Equal(t, []string{"eu-west-2"}, s.TargetRegions)
	// The sandbox's default topology names this key for eu-west-2.
	require.Equal(t, map[string]string{"eu-west-2": "2f0c3a52-7d3e-4a59-9c1e-0a1b2c3d4e02"}, s.KMSKeys)
	require.Equal(t, []string{"111122223333"}, s.ShareWithAccounts)
	require.True(t, s.CopyTags)
	require.True(t, s.ApproveBeforeSharing)
	require.Equal(t, 10, s.MaxParallel)
	require.Equal(t, "ami/eu-west-1/tags:app=shop", workflows.AMIShareWorkflowID(s.SourceRegion, workflows.AMISelection(s)))
}

func TestAMIDefaultsAndSelection(t *testing.T) {
	s, err := AMIShare(&ferryv1.AmiShareSpec{
		SourceRegion: "eu-west-1", ImageIds: []string{"ami-0a1b2c3d4e5f60002", "ami-0a1b2c3d4e5f60001"},
		TargetRegions: []string{"us-east-1", "eu-west-2"}, SkipCopyTags: true,
	})
	require.NoError(t, err)
	require.Equal(t, DefaultMaxParallelCopies, s.MaxParallel)
	require.False(t, s.CopyTags)
	require.Equal(t, []string{"us-east-1", "eu-west-2"}, s.TargetRegions, "target order is kept")
	// The same selection in another order gives the same workflow id.
	s2 := s
	s2.ImageIDs = []string{"ami-0a1b2c3d4e5f60001", "ami-0a1b2c3d4e5f60002"}
	require.Equal(t, "ami-0a1b2c3d4e5f60001+ami-0a1b2c3d4e5f60002", workflows.AMISelection(s))
	require.Equal(t, workflows.AMISelection(s), workflows.AMISelection(s2))
}

func TestAMIValidationErrors(t *testing.T) {
	base := func() *ferryv1.AmiShareSpec {
		return &ferryv1.AmiShareSpec{SourceRegion: "eu-west-1", ImageTags: map[string]string{"app": "shop"}, TargetRegions: []string{"eu-west-2", "us-east-1"}}
	}
	cases := []struct {
		name  string
		mod   func(s *ferryv1.AmiShareSpec)
		field string
	}{
		{"no source", func(s *ferryv1.AmiShareSpec) { s.SourceRegion = "" }, "amiShare.sourceRegion"},
		{"bad source", func(s *ferryv1.AmiShareSpec) { s.SourceRegion = "Europe" }, "amiShare.sourceRegion"},
		{"no selector", func(s *ferryv1.AmiShareSpec) { s.ImageTags = nil }, "amiShare.imageIds"},
		{"bad image id", func(s *ferryv1.AmiShareSpec) { s.ImageIds = []string{"ami-0a1b2c3d4e5f60001", "ami-xyz"} }, "amiShare.imageIds[1]"},
		{"duplicate image", func(s *ferryv1.AmiShareSpec) { s.ImageIds = []string{"ami-0a1b2c3d", "ami-0a1b2c3d"} }, "amiShare.imageIds[1]"},
		{"empty tag key", func(s *ferryv1.AmiShareSpec) { s.ImageTags = map[string]string{"": "x"} }, "amiShare.imageTags"},
		{"bad instance", func(s *ferryv1.AmiShareSpec) { s.CreateFromInstances = []string{"i-nothex"} }, "amiShare.createFromInstances[0]"},
		{"reboot without instances", func(s *ferryv1.AmiShareSpec) { s.Reboot = true }, "amiShare.reboot"},
		{"no targets", func(s *ferryv1.AmiShareSpec) { s.TargetRegions = nil }, "amiShare.targetRegions"},
		{"bad target", func(s *ferryv1.AmiShareSpec) { s.TargetRegions = []string{"eu-west-2", "mars-1"} }, "amiShare.targetRegions[1]"},
		{"target is source", func(s *ferryv1.AmiShareSpec) { s.TargetRegions = []string{"eu-west-1"} }, "amiShare.targetRegions[0]"},
		{"duplicate target", func(s *ferryv1.AmiShareSpec) { s.TargetRegions = []string{"eu-west-2", "eu-west-2"} }, "amiShare.targetRegions[1]"},
		{"key for other region", func(s *ferryv1.AmiShareSpec) { s.KmsKeys = map[string]string{"ap-south-1": "alias/shop"} }, "amiShare.kmsKeys.ap-south-1"},
		{"key arn in other region", func(s *ferryv1.AmiShareSpec) {
			s.KmsKeys = map[string]string{"eu-west-2": "arn:aws:kms:eu-west-1:000000000000:key/2f0c3a52-7d3e-4a59-9c1e-0a1b2c3d4e02"}
		}, "amiShare.kmsKeys.eu-west-2"},
		{"bad key", func(s *ferryv1.AmiShareSpec) { s.KmsKeys = map[string]string{"eu-west-2": "shop"} }, "amiShare.kmsKeys.eu-west-2"},
		{"bad account", func(s *ferryv1.AmiShareSpec) { s.ShareWithAccounts = []string{"1111-2222-3333"} }, "amiShare.shareWithAccounts[0]"},
		{"bad org", func(s *ferryv1.AmiShareSpec) { s.ShareWithOrganizations = []string{"o-abc"} }, "amiShare.shareWithOrganizations[0]"},
		{"bad ou", func(s *ferryv1.AmiShareSpec) {
			s.ShareWithOrganizationalUnits = []string{"arn:aws:organizations::123456789012:organization/o-exampleorgid"}
		}, "amiShare.shareWithOrganizationalUnits[0]"},
		{"reserved add tag", func(s *ferryv1.AmiShareSpec) { s.AddTags = map[string]string{"ferry:migration": "x"} }, "amiShare.addTags.ferry:migration"},
		{"too parallel", func(s *ferryv1.AmiShareSpec) { s.MaxParallelCopies = 26 }, "amiShare.maxParallelCopies"},
		{"approval without sharing", func(s *ferryv1.AmiShareSpec) { s.ApproveBeforeSharing = true }, "amiShare.approveBeforeSharing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := base()
			c.mod(s)
			_, err := AMIShare(s)
			require.Error(t, err)
			fe, ok := AsFieldError(err)
			require.True(t, ok, "want a *FieldError, got %T: %v", err, err)
			require.Equal(t, c.field, fe.Field, err.Error())
		})
	}
	// Well-formed sharing targets pass.
	s := base()
	s.ShareWithAccounts = []string{"111122223333"}
	s.ShareWithOrganizations = []string{"arn:aws:organizations::123456789012:organization/o-exampleorgid"}
	s.ShareWithOrganizationalUnits = []string{"arn:aws:organizations::123456789012:ou/o-exampleorgid/ou-ab12-cd34ef56"}
	s.KmsKeys = map[string]string{"eu-west-2": "alias/shop", "us-east-1": "arn:aws:kms:us-east-1:000000000000:key/3f0c3a52-7d3e-4a59-9c1e-0a1b2c3d4e03"}
	s.MaxParallelCopies = 25
	_, err := AMIShare(s)
	require.NoError(t, err)

	_, err = AMIShareInput(&ferryv1.MigrationSpec{}, "alice")
	fe, ok := AsFieldError(err)
	require.True(t, ok)
	require.Equal(t, "amiShare", fe.Field)
}
