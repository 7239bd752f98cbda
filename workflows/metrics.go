package workflows

import (
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"
)

// Ferry's own metrics, emitted from workflow code through the SDK's metrics handler: the
// SDK drops them while a history replays, so each event counts once however often a run is
// replayed, and they reach whatever the worker's client exports (Prometheus at /metrics,
// through the SDK's OpenTelemetry handler: its counters are up-down counters, so they read
// as gauges that only grow, and rate() and increase() apply; timers are histograms in
// seconds). Every metric also carries the SDK's tags (namespace, task_queue,
// workflow_type). Emitting a metric issues no command, so adding one needs no GetVersion.
const (
	// MetricMigrationsStarted counts first runs of migrations (not continuations), by kind.
	MetricMigrationsStarted = "ferry_migrations_started"
	// MetricMigrationsEnded counts migrations that ended, by kind and state.
	MetricMigrationsEnded = "ferry_migrations_ended"
	// MetricGateEvaluations counts gate evaluations, by kind and verdict.
	MetricGateEvaluations = "ferry_gate_evaluations"
	// MetricRollbacks counts rollbacks begun, by kind and who asked (system or person).
	MetricRollbacks = "ferry_rollbacks"
	// MetricRollbackDuration is a rollback's time from its start to its end, by kind.
	MetricRollbackDuration = "ferry_rollback_duration"
	// MetricApprovalWait is how long an approval gate waited for its approvers, by kind.
	MetricApprovalWait = "ferry_approval_wait"
	// MetricRollbackReaction is the time from a rollback being asked for (a gate failing,
	// a person) to the rollback beginning, by kind: how long a step in flight or a wait
	// held it up.
	MetricRollbackReaction = "ferry_rollback_reaction"
	// MetricStepsEnded counts steps that ended, by kind and status (done, failed,
	// rolled-back, ...). Step names are left out: a spec chooses them, and labels must stay
	// a bounded set.
	MetricStepsEnded = "ferry_steps_ended"
	// MetricStepDuration is a step's time from start to end, by kind and status.
	MetricStepDuration = "ferry_step_duration"
)

// metricsOf is the run's metrics handler tagged with its kind.
func metricsOf(ctx workflow.Context, kind string) client.MetricsHandler {
	return workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"kind": kind})
}

// countStart counts a migration's first run; a run continued as new is the same migration.
func (s *Steering) countStart(ctx workflow.Context) {
	if workflow.GetInfo(ctx).ContinuedExecutionRunID == "" {
		metricsOf(ctx, s.p.Kind).Counter(MetricMigrationsStarted).Inc(1)
	}
}

// countEnd counts a migration's end in its final state, and a rollback's duration.
func (s *Steering) countEnd(ctx workflow.Context) {
	m := metricsOf(ctx, s.p.Kind)
	m.WithTags(map[string]string{"state": s.state()}).Counter(MetricMigrationsEnded).Inc(1)
	if !s.rollbackBegan.IsZero() {
		m.Timer(MetricRollbackDuration).Record(workflow.Now(ctx).Sub(s.rollbackBegan))
	}
}

func (s *Steering) countRollback(ctx workflow.Context, by string) {
	s.rollbackBegan = workflow.Now(ctx)
	who := "person"
	if by == SystemIdentity {
		who = "system"
	}
	m := metricsOf(ctx, s.p.Kind)
	m.WithTags(map[string]string{"by": who}).Counter(MetricRollbacks).Inc(1)
	// Unknown (zero) when the request came before a continue-as-new: not recorded then.
	if !s.rollbackAsked.IsZero() {
		m.Timer(MetricRollbackReaction).Record(s.rollbackBegan.Sub(s.rollbackAsked))
	}
}

// countStep counts a step's end and records its duration when it had started.
func (s *Steering) countStep(ctx workflow.Context, step StepProgress) {
	m := metricsOf(ctx, s.p.Kind).WithTags(map[string]string{"status": step.Status})
	m.Counter(MetricStepsEnded).Inc(1)
	if !step.StartTime.IsZero() {
		m.Timer(MetricStepDuration).Record(step.EndTime.Sub(step.StartTime))
	}
}

func (s *Steering) countApprovalWait(ctx workflow.Context, opened time.Time) {
	if !opened.IsZero() {
		metricsOf(ctx, s.p.Kind).Timer(MetricApprovalWait).Record(workflow.Now(ctx).Sub(opened))
	}
}
