package cli

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
)

// mongoFixture is a three-member set in eu-west-1 extended by two members in eu-west-2.
func mongoFixture(s mState) *ferryv1.Migration {
	m := base("mongo/rs0", ferryv1.MigrationKind_MIGRATION_KIND_MONGO_PRIMARY_MOVE, s, "wait for sync")
	m.Spec = &ferryv1.MigrationSpec{Kind: &ferryv1.MigrationSpec_MongoPrimaryMove{MongoPrimaryMove: &ferryv1.MongoPrimaryMoveSpec{
		ReplicaSet: "rs0", SourceRegion: "eu-west-1", TargetRegion: "eu-west-2", MaxLag: durationpb.New(10 * time.Second)}}}
	mem := func(host, region, state string, votes int32, prio float64, lag time.Duration) *ferryv1.MongoMemberStatus {
		return &ferryv1.MongoMemberStatus{Host: host, Region: region, State: state, Votes: votes, Priority: prio, Lag: durationpb.New(lag)}
	}
	members := []*ferryv1.MongoMemberStatus{
		mem("db-1.euw1:27017", "eu-west-1", "PRIMARY", 1, 2, 0),
		mem("db-2.euw1:27017", "eu-west-1", "SECONDARY", 1, 1, time.Second),
		mem("db-3.euw1:27017", "eu-west-1", "SECONDARY", 1, 1, 2*time.Second),
		mem("db-4.euw2:27017", "eu-west-2", "SECONDARY", 0, 0, 45*time.Second),
		mem("db-5.euw2:27017", "eu-west-2", "STARTUP2", 0, 0, 0),
	}
	mg := &ferryv1.MongoMoveStatus{Primary: "db-1.euw1:27017", Members: members, ReconfigsPlanned: 8, ReconfigsApplied: 2, ConfigVersion: 7}
	m.Steps = []*ferryv1.Step{
		step("add members", stDone, 29, 25, "db-4.euw2, db-5.euw2 as votes:0 priority:0"),
		step("wait for sync", stRun, 25, -1, ""),
		step("make voting", stPend, -1, -1, ""),
		step("move primary", stPend, -1, -1, ""),
	}
	switch s {
	case awaiting:
		m.Phase = "approve primary move"
		members[3].Votes, members[3].Lag = 1, durationpb.New(time.Second)
		members[4].State, members[4].Votes, members[4].Lag = "SECONDARY", 1, durationpb.New(2*time.Second)
		mg.ReconfigsApplied, mg.ConfigVersion = 4, 9
		m.Steps[1].Status, m.Steps[2].Status = stDone, stDone
		m.PendingApprovals = []*ferryv1.PendingApproval{{Step: "move primary", Required: 1}}
	case completed:
		m.Phase = "done"
		members[0].State, members[0].Priority = "SECONDARY", 0.5
		members[3].State, members[3].Votes, members[3].Priority, members[3].Lag = "PRIMARY", 1, 3, durationpb.New(0)
		members[4].State, members[4].Votes, members[4].Priority, members[4].Lag = "SECONDARY", 1, 2, durationpb.New(time.Second)
		mg.Primary, mg.ReconfigsApplied, mg.ConfigVersion = "db-4.euw2:27017", 8, 13
		for _, st := range m.Steps {
			st.Status = stDone
		}
	case rolledBk:
		m.Phase = "rolled back"
		m.Message = "rolled back by bob: replication lag on db-4.euw2 stayed above 10s for 30m; the saved config (version 7) is restored"
		members = members[:3]
		mg.Members, mg.ReconfigsApplied, mg.ConfigVersion = members, 0, 11
		m.Steps[0].Status, m.Steps[1].Status = stRolled, stRolled
	}
	m.MongoMove = mg
	return m
}

// regionFixture is a region move with its three phases; children holds each phase's own
// migration as `ferry get` fetches it.
func regionFixture(s mState) (*ferryv1.Migration, map[string]*ferryv1.Migration) {
	m := base("region/shop/eu-west-1/eu-west-2", ferryv1.MigrationKind_MIGRATION_KIND_REGION_MOVE, s, "mongo-primary-move")
	ph := func(name, id, state string) *ferryv1.PhaseStatus {
		return &ferryv1.PhaseStatus{Name: name, MigrationId: id, State: state}
	}
	ami, mongo, dns := amiFixture(completed), mongoFixture(running), dnsFixture(running)
	m.Phases = []*ferryv1.PhaseStatus{
		ph("ami-share", ami.GetId(), "completed"),
		ph("mongo-primary-move", mongo.GetId(), "running"),
		ph("dns-shift", dns.GetId(), "pending"),
	}
	m.Steps = []*ferryv1.Step{step("ami-share", stDone, 30, 20, ""), step("mongo-primary-move", stRun, 20, -1, ""), step("dns-shift", stPend, -1, -1, "")}
	switch s {
	case awaiting:
		m.Phase = "approve dns-shift"
		mongo = mongoFixture(completed)
		m.Phases[1].State = "completed"
		m.Steps[1].Status = stDone
		m.PendingApprovals = []*ferryv1.PendingApproval{{Step: "approve dns-shift", Required: 1}}
	case completed:
		m.Phase = "done"
		mongo, dns = mongoFixture(completed), dnsFixture(completed)
		for _, p := range m.Phases {
			p.State = "completed"
		}
		for _, st := range m.Steps {
			st.Status = stDone
		}
	case failed:
		m.Phase = "unwound"
		m.Message = "phase dns-shift failed: gate error rate failed at 25%; mongo-primary-move and ami-share were undone"
		mongo, dns = mongoFixture(rolledBk), dnsFixture(rolledBk)
		m.Phases[0].State, m.Phases[1].State, m.Phases[2].State = "rolled-back", "rolled-back", "failed"
		m.Steps[0].Status, m.Steps[1].Status, m.Steps[2].Status = stRolled, stRolled, stFail
		ami.State = rolledBk
		for _, c := range ami.GetAmiShare().GetCopies() {
			c.State = "rolled-back"
		}
	}
	children := map[string]*ferryv1.Migration{ami.GetId(): ami, mongo.GetId(): mongo, dns.GetId(): dns}
	return m, children
}
