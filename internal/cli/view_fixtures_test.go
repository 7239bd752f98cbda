package cli

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
)

// Fixtures for the golden tests: one migration per (kind, state), as GetMigration answers.
// The clock is fixed at viewNow so waits and estimates print the same every run.

var viewNow = time.Date(2026, 3, 14, 10, 30, 0, 0, time.UTC)

func at(minutesBefore float64) *timestamppb.Timestamp {
	return timestamppb.New(viewNow.Add(-time.Duration(minutesBefore * float64(time.Minute))))
}

type (
	mState = ferryv1.MigrationState
	sStat  = ferryv1.StepStatus
)

const (
	running   = ferryv1.MigrationState_MIGRATION_STATE_RUNNING
	awaiting  = ferryv1.MigrationState_MIGRATION_STATE_AWAITING_APPROVAL
	completed = ferryv1.MigrationState_MIGRATION_STATE_COMPLETED
	rolledBk  = ferryv1.MigrationState_MIGRATION_STATE_ROLLED_BACK
	failed    = ferryv1.MigrationState_MIGRATION_STATE_FAILED
	paused    = ferryv1.MigrationState_MIGRATION_STATE_PAUSED
	stDone    = ferryv1.StepStatus_STEP_STATUS_DONE
	stRun     = ferryv1.StepStatus_STEP_STATUS_RUNNING
	stPend    = ferryv1.StepStatus_STEP_STATUS_PENDING
	stFail    = ferryv1.StepStatus_STEP_STATUS_FAILED
	stRolled  = ferryv1.StepStatus_STEP_STATUS_ROLLED_BACK
)

func step(name string, s sStat, startMin, endMin float64, detail string) *ferryv1.Step {
	st := &ferryv1.Step{Name: name, Status: s, Detail: detail}
	if startMin >= 0 {
		st.StartTime = at(startMin)
	}
	if endMin >= 0 {
		st.EndTime = at(endMin)
	}
	return st
}

func base(id string, k ferryv1.MigrationKind, s mState, phase string) *ferryv1.Migration {
	m := &ferryv1.Migration{Id: id, Kind: k, State: s, Phase: phase, Initiator: "alice", StartTime: at(30), PlanHash: "3f9c0d1e",
		UiUrl: "http://127.0.0.1:8233/namespaces/default/workflows/" + id,
		Audit: []*ferryv1.AuditEntry{{Time: at(30), Identity: "alice", Action: "start", Reason: "move to eu-west-2"}}}
	switch s {
	case completed, rolledBk, failed:
		m.CloseTime = at(1)
	}
	return m
}

// dnsFixture is a shift 10,25,50,100 in the given state.
func dnsFixture(s mState) *ferryv1.Migration {
	m := base("dns/shop.example./www.shop.example./A", ferryv1.MigrationKind_MIGRATION_KIND_DNS_SHIFT, s, "shift to 25%")
	m.Spec = &ferryv1.MigrationSpec{Kind: &ferryv1.MigrationSpec_DnsShift{DnsShift: &ferryv1.DnsShiftSpec{
		From: "eu-west-1", To: "eu-west-2", Schedule: []uint32{10, 25, 50, 100}, BakeTime: durationpb.New(5 * time.Minute)}}}
	gates := []*ferryv1.GateResult{
		{Name: "http eu-west-2", Healthy: true, Verdict: "pass", Detail: "200 in 41ms", Time: at(0.5)},
		{Name: "error rate", Healthy: true, Verdict: "pass", Detail: "0.2% <= 1%", Time: at(0.5)},
	}
	d := &ferryv1.DnsShiftStatus{FromWeight: 75, ToWeight: 25, StepIndex: 1, Gates: gates}
	m.Steps = []*ferryv1.Step{
		step("shift to 10%", stDone, 28, 20, "change C1 INSYNC"),
		step("shift to 25%", stRun, 2, -1, "one batch setting eu-west-1=75 eu-west-2=25, wait INSYNC, dwell 5m0s checking 2 gate(s) every 10s"),
		step("shift to 50%", stPend, -1, -1, ""),
		step("shift to 100%", stPend, -1, -1, ""),
	}
	switch s {
	case awaiting:
		m.Spec = nil // GetMigration may answer without the spec
		m.Steps[1] = step("shift to 25%", stDone, 9, 2, "change C2 INSYNC")
		m.PendingApprovals = []*ferryv1.PendingApproval{{Step: "shift to 25%", Required: 2, ApprovedBy: []string{"bob"}}}
	case completed:
		m.Phase = "done"
		d = &ferryv1.DnsShiftStatus{FromWeight: 0, ToWeight: 100, StepIndex: 3, Gates: gates}
		for i := range m.Steps {
			m.Steps[i].Status = stDone
		}
	case rolledBk:
		m.Phase = "rolled back"
		m.Message = "gate error rate failed at 25%: 7.5% > 1%; weights restored to 100/0"
		gates[1] = &ferryv1.GateResult{Name: "error rate", Verdict: "fail", Detail: "7.5% > 1%", Time: at(3)}
		d = &ferryv1.DnsShiftStatus{FromWeight: 100, ToWeight: 0, StepIndex: 1, Gates: gates}
		m.Steps[0].Status, m.Steps[1].Status = stRolled, stFail
		m.Audit = append(m.Audit, &ferryv1.AuditEntry{Time: at(3), Identity: "system", Action: "gate-failed", Step: "shift to 25%", Reason: "error rate: 7.5% > 1%"})
	}
	m.DnsShift = d
	return m
}

// amiFixture is two images copied into two regions and shared with one account.
func amiFixture(s mState) *ferryv1.Migration {
	m := base("ami/ami-0a1b2c3d/eu-west-2", ferryv1.MigrationKind_MIGRATION_KIND_AMI_SHARE, s, "copy")
	m.Spec = &ferryv1.MigrationSpec{Kind: &ferryv1.MigrationSpec_AmiShare{AmiShare: &ferryv1.AmiShareSpec{
		SourceRegion: "eu-west-1", TargetRegions: []string{"eu-west-2", "eu-central-1"}, ShareWithAccounts: []string{"111122223333"}}}}
	c := func(src, region, id, state, detail string) *ferryv1.AmiCopyStatus {
		return &ferryv1.AmiCopyStatus{SourceImageId: src, Region: region, ImageId: id, State: state, Detail: detail}
	}
	m.Steps = []*ferryv1.Step{step("copy", stRun, 20, -1, ""), step("share", stPend, -1, -1, "")}
	copies := []*ferryv1.AmiCopyStatus{
		c("ami-0a1b2c3d", "eu-west-2", "ami-1111aaaa", "available", ""),
		c("ami-0a1b2c3d", "eu-central-1", "ami-2222bbbb", "copying", ""),
		c("ami-0e0f0a0b", "eu-west-2", "ami-3333cccc", "copying", ""),
		c("ami-0e0f0a0b", "eu-central-1", "", "pending", ""),
	}
	switch s {
	case awaiting:
		m.Phase = "approve before sharing"
		m.Steps[0] = step("copy", stDone, 20, 3, "4 copies available")
		for _, x := range copies {
			x.State, x.ImageId = "available", "ami-"+x.Region[3:7]+x.SourceImageId[4:8]
		}
		m.PendingApprovals = []*ferryv1.PendingApproval{{Step: "share", Required: 1}}
	case completed:
		m.Phase = "done"
		m.Steps = []*ferryv1.Step{step("copy", stDone, 20, 5, ""), step("share", stDone, 5, 2, "")}
		for _, x := range copies {
			x.State, x.ImageId = "shared", "ami-"+x.Region[3:7]+x.SourceImageId[4:8]
		}
	case failed:
		m.Phase = "copy"
		m.Message = "copy of ami-0e0f0a0b to eu-central-1 failed: the KMS key alias/ami is not usable in eu-central-1; nothing else was left behind"
		m.Steps[0].Status = stFail
		copies[1].State, copies[2].State = "rolled-back", "rolled-back"
		copies[0].State = "rolled-back"
		copies[3] = c("ami-0e0f0a0b", "eu-central-1", "", "failed", "KMSKeyNotAccessibleFault: alias/ami")
	}
	m.AmiShare = &ferryv1.AmiShareStatus{Copies: copies}
	return m
}
