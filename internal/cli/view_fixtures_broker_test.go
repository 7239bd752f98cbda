package cli

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
)

// brokerFixture is the marketplace's events broker moved producers first, in state s.
func brokerFixture(s mState) *ferryv1.Migration {
	m := base("broker/10.0.2.7:5672/shop", ferryv1.MigrationKind_MIGRATION_KIND_BROKER_MOVE, s, "drain old queues")
	b := &ferryv1.BrokerMoveStatus{
		OldBroker: "10.0.2.7:5672", NewBroker: "10.8.2.7:5672", Order: "producersFirst",
		Applications: []*ferryv1.BrokerAppStatus{
			{ConnectionName: "orders-api", Role: "producer", Broker: "new"},
			{ConnectionName: "billing-worker", Role: "consumer", Broker: "old"},
		},
		Drain: &ferryv1.BrokerDrainStatus{Broker: "old", MessagesLeft: 1240, AckRate: 310.5, Estimate: durationpb.New(4 * time.Second),
			Blocking: `queue "orders" holds 1200 ready and 40 unacknowledged messages`, Started: timestamppb.New(viewNow.Add(-12 * time.Second))},
	}
	m.Steps = []*ferryv1.Step{
		step("preflight", stDone, 40, 39, "queues orders on the old broker, the new broker's definitions, 2 switch records"),
		step("move producer orders-api", stDone, 39, 14, ""),
		step("drain old queues", stRun, 14, -1, ""),
		step("move consumer billing-worker", stPend, -1, -1, ""),
		step("verify", stPend, -1, -1, ""),
	}
	switch s {
	case awaiting:
		m.Phase = "drain old queues"
		b.Drain.Blocking = `queue "orders" holds 0 ready and 3 unacknowledged messages`
		b.Drain.MessagesLeft, b.Drain.AckRate, b.Drain.Estimate = 3, 0, durationpb.New(0)
		m.PendingApprovals = []*ferryv1.PendingApproval{{Step: "drain timeout: approve to shovel the rest (on-confirm), or roll back", Required: 1}}
	case completed:
		m.Phase = "done"
		b.Applications[1].Broker = "new"
		b.Drain.MessagesLeft, b.Drain.AckRate, b.Drain.Estimate, b.Drain.Blocking, b.Drain.Drained = 0, 0, durationpb.New(0), "", true
		for _, st := range m.Steps {
			st.Status = stDone
		}
	case rolledBk:
		m.Phase = "rolled back"
		b.Applications[0].Broker = "old"
		b.Drain = &ferryv1.BrokerDrainStatus{Broker: "new", Drained: true, Started: timestamppb.New(viewNow.Add(-5 * time.Second))}
		m.Steps[1].Status, m.Steps[2].Status, m.Steps[2].Detail = stRolled, stRolled, "rollback by bob: consumers lag"
	}
	if s == running {
		b.Shovels = nil
	}
	m.BrokerMove = b
	return m
}
