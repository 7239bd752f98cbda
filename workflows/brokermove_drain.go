package workflows

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/ferryhq/ferry/activities"
)

// DrainRule is what the drain oracle needs besides the samples.
type DrainRule struct {
	// StatsInterval is the old broker's collect_statistics_interval: its figures change
	// only that often, so "held" is measured in intervals, not in samples.
	StatsInterval time.Duration
	// Intervals a clean reading must hold (at least 2; less is raised to 2).
	Intervals int
	// Producers are the producing applications' connection names; any connection of theirs
	// still on the old broker means something may yet publish there.
	Producers []string
}

// DrainVerdict is the oracle's judgement of the samples so far, plus the progress the UI
// and the CLI show.
type DrainVerdict struct {
	Drained bool
	// Blocking says why not, about the newest sample ("" when drained, or "clean for 1.0s
	// of 2.0s" while a clean reading is being held).
	Blocking string
	// CleanSince is the time of the first sample of the current clean run (zero if the
	// newest sample is not clean); CleanSamples its length.
	CleanSince   time.Time
	CleanSamples int
	// MessagesLeft (ready + unacknowledged over the queues), the broker's ack rate per
	// second over them, and MessagesLeft / AckRate (0 when unknown).
	MessagesLeft int64
	AckRate      float64
	Estimate     time.Duration
}

// JudgeDrain is the drain oracle: the old broker is drained when every queue has no
// message ready or unacknowledged, still has a consumer, and nothing publishes into it
// (no publishing channel or producer connection left on the broker, no exchange or queue
// publish rate, no publish counter moving) in every sample of a run spanning at least
// rule.Intervals statistics intervals, and at least two samples. The statistics are
// samples refreshed once an interval and listings are cached, so a single zero reading
// proves nothing: a producer's last burst may not be counted yet, and unacked messages
// come back as ready when a consumer goes away. A consumer is required because a queue
// nobody consumes from is not drained, only unwatched. Pure, so it is deterministic in
// workflow code and tested by tables.
func JudgeDrain(samples []activities.RabbitSample, rule DrainRule) DrainVerdict {
	var v DrainVerdict
	if len(samples) == 0 {
		v.Blocking = "no sample of the old broker yet"
		return v
	}
	last := samples[len(samples)-1]
	for _, q := range last.Queues {
		v.MessagesLeft += q.Ready + q.Unacked
		v.AckRate += q.AckRate
	}
	if v.AckRate > 0 && v.MessagesLeft > 0 {
		v.Estimate = time.Duration(math.Ceil(float64(v.MessagesLeft)/v.AckRate)) * time.Second
	}
	start := len(samples)
	for i := len(samples) - 1; i >= 0; i-- {
		var prev *activities.RabbitSample
		if i > 0 {
			prev = &samples[i-1]
		}
		why := dirty(samples[i], prev, rule.Producers)
		if why != "" {
			if i == len(samples)-1 {
				v.Blocking = why
				return v
			}
			break
		}
		start = i
	}
	run := samples[start:]
	v.CleanSince, v.CleanSamples = run[0].At, len(run)
	need := time.Duration(max(rule.Intervals, 2)) * rule.StatsInterval
	held := last.At.Sub(run[0].At)
	switch {
	case len(run) < 2:
		v.Blocking = fmt.Sprintf("one clean reading; holding it for %s", need)
	case held < need:
		v.Blocking = fmt.Sprintf("clean for %s of %s", held.Round(100*time.Millisecond), need)
	default:
		v.Drained = true
	}
	return v
}

// dirty says why one sample is not a drained reading ("" when it is); prev, when there is
// one, is the sample before it, whose publish counters must not have moved since.
func dirty(s activities.RabbitSample, prev *activities.RabbitSample, producers []string) string {
	if len(s.Queues) == 0 {
		return "the reading holds no queue" // a reading of connections only proves nothing about queues
	}
	for _, c := range s.Connections {
		if c.Publishing > 0 {
			return fmt.Sprintf("connection %q (%s) has a publishing channel on the old broker", c.ClientName, c.Name)
		}
		if slices.Contains(producers, c.ClientName) {
			return fmt.Sprintf("producer %q is still connected to the old broker (%s)", c.ClientName, c.Name)
		}
	}
	for _, q := range s.Queues {
		switch {
		case q.Missing:
			return fmt.Sprintf("queue %q is gone from the old broker", q.Name)
		case q.Ready+q.Unacked > 0:
			return fmt.Sprintf("queue %q holds %d ready and %d unacknowledged messages", q.Name, q.Ready, q.Unacked)
		case q.Consumers == 0:
			return fmt.Sprintf("queue %q has no consumer", q.Name)
		case q.PublishRate > 0:
			return fmt.Sprintf("queue %q is being published to (%.1f/s)", q.Name, q.PublishRate)
		}
		if prev != nil {
			if i := slices.IndexFunc(prev.Queues, func(p activities.RabbitQueueSample) bool { return p.Name == q.Name }); i >= 0 && q.Published > prev.Queues[i].Published {
				return fmt.Sprintf("queue %q received %d messages since the last sample", q.Name, q.Published-prev.Queues[i].Published)
			}
		}
	}
	for _, e := range s.Exchanges {
		if e.PublishInRate > 0 {
			return fmt.Sprintf("exchange %q is being published to (%.1f/s)", e.Name, e.PublishInRate)
		}
		if prev != nil {
			if i := slices.IndexFunc(prev.Exchanges, func(p activities.RabbitExchangeSample) bool { return p.Name == e.Name }); i >= 0 && e.PublishIn > prev.Exchanges[i].PublishIn {
				return fmt.Sprintf("exchange %q received %d messages since the last sample", e.Name, e.PublishIn-prev.Exchanges[i].PublishIn)
			}
		}
	}
	return ""
}
