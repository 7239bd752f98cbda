package workflows

import (
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/activities"
)

var drainT0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

// drainSample is one reading of queue "orders" (fed by exchange "shop") at second sec.
func drainSample(sec float64, ready, unacked int64, consumers int, published int64) activities.RabbitSample {
	return activities.RabbitSample{
		At:        drainT0.Add(time.Duration(sec * float64(time.Second))),
		Queues:    []activities.RabbitQueueSample{{Name: "orders", Ready: ready, Unacked: unacked, Consumers: consumers, Published: published}},
		Exchanges: []activities.RabbitExchangeSample{{Name: "shop", PublishIn: published}},
		Connections: []activities.RabbitConnectionSample{
			{Name: "127.0.0.1:50000 -> 127.0.0.4:5672", ClientName: "shop-consumer", Consuming: 1},
		},
	}
}

var drainRule = DrainRule{StatsInterval: time.Second, Intervals: 2, Producers: []string{"shop-producer"}}

// The acceptance test: a queue that reads 0 once and then N is not drained, and neither
// is the 0 alone.
func TestBrokerDrainZeroOnceThenN(t *testing.T) {
	samples := []activities.RabbitSample{drainSample(0, 40, 5, 1, 100), drainSample(1, 0, 0, 1, 100)}
	if v := JudgeDrain(samples, drainRule); v.Drained {
		t.Fatalf("one zero sample judged drained: %+v", v)
	}
	samples = append(samples, drainSample(2, 7, 0, 1, 100))
	v := JudgeDrain(samples, drainRule)
	if v.Drained || v.MessagesLeft != 7 || !strings.Contains(v.Blocking, "7 ready") {
		t.Fatalf("0 then 7: %+v", v)
	}
	// Clean again: it has to be held for two intervals from here, not from the first zero.
	samples = append(samples, drainSample(3, 0, 0, 1, 100), drainSample(4, 0, 0, 1, 100))
	if v := JudgeDrain(samples, drainRule); v.Drained || !v.CleanSince.Equal(drainT0.Add(3*time.Second)) {
		t.Fatalf("clean for one interval judged drained: %+v", v)
	}
	samples = append(samples, drainSample(5, 0, 0, 1, 100))
	if v := JudgeDrain(samples, drainRule); !v.Drained || v.CleanSamples != 3 {
		t.Fatalf("clean for two intervals not drained: %+v", v)
	}
}

func TestBrokerDrainNeedsTwoIntervalsAndTwoSamples(t *testing.T) {
	// Two samples 2 intervals apart suffice; many samples within one interval (the same
	// cached reading) do not.
	if v := JudgeDrain([]activities.RabbitSample{drainSample(0, 0, 0, 1, 9), drainSample(2, 0, 0, 1, 9)}, drainRule); !v.Drained {
		t.Fatalf("two clean samples 2 intervals apart: %+v", v)
	}
	var fast []activities.RabbitSample
	for i := range 10 {
		fast = append(fast, drainSample(float64(i)*0.1, 0, 0, 1, 9))
	}
	if v := JudgeDrain(fast, drainRule); v.Drained {
		t.Fatalf("10 samples within one interval judged drained: %+v", v)
	}
	// Intervals below 2 are raised to 2.
	if v := JudgeDrain([]activities.RabbitSample{drainSample(0, 0, 0, 1, 9), drainSample(1, 0, 0, 1, 9)}, DrainRule{StatsInterval: time.Second, Intervals: 1}); v.Drained {
		t.Fatalf("Intervals 1 accepted one interval: %+v", v)
	}
	if v := JudgeDrain(nil, drainRule); v.Drained || v.Blocking == "" {
		t.Fatalf("no samples: %+v", v)
	}
}

// Each way something may still be on or reach the old queue breaks a clean run.
func TestBrokerDrainBlockers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(s *activities.RabbitSample)
		want   string
	}{
		{"unacked", func(s *activities.RabbitSample) { s.Queues[0].Unacked = 3 }, "3 unacknowledged"},
		{"no consumer", func(s *activities.RabbitSample) { s.Queues[0].Consumers = 0 }, "no consumer"},
		{"missing queue", func(s *activities.RabbitSample) { s.Queues[0].Missing = true }, "gone"},
		{"queue publish rate", func(s *activities.RabbitSample) { s.Queues[0].PublishRate = 0.4 }, "being published"},
		{"exchange publish rate", func(s *activities.RabbitSample) { s.Exchanges[0].PublishInRate = 2 }, `exchange "shop"`},
		{"publish counter moved", func(s *activities.RabbitSample) { s.Queues[0].Published++; s.Exchanges[0].PublishIn++ }, "received 1 messages"},
		{"exchange counter moved", func(s *activities.RabbitSample) { s.Exchanges[0].PublishIn += 4 }, "received 4 messages"},
		{"producer connected", func(s *activities.RabbitSample) {
			s.Connections = append(s.Connections, activities.RabbitConnectionSample{Name: "c2", ClientName: "shop-producer"})
		}, `producer "shop-producer"`},
		{"publishing channel", func(s *activities.RabbitSample) { s.Connections[0].Publishing = 1 }, "publishing channel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			samples := []activities.RabbitSample{drainSample(0, 0, 0, 1, 50), drainSample(1, 0, 0, 1, 50), drainSample(2, 0, 0, 1, 50)}
			if v := JudgeDrain(samples, drainRule); !v.Drained {
				t.Fatalf("baseline not drained: %+v", v)
			}
			// The blocker in the middle sample: the run restarts after it.
			tc.mutate(&samples[1])
			if tc.name == "publish counter moved" || tc.name == "exchange counter moved" {
				// A counter that moved stays moved: the later sample carries it too.
				samples[2].Queues[0].Published, samples[2].Exchanges[0].PublishIn = samples[1].Queues[0].Published, samples[1].Exchanges[0].PublishIn
			}
			if v := JudgeDrain(samples, drainRule); v.Drained {
				t.Fatalf("drained despite a blocker in the middle: %+v", v)
			}
			v := JudgeDrain(samples[:2], drainRule)
			if v.Drained || !strings.Contains(v.Blocking, tc.want) {
				t.Fatalf("blocking %q, want it to mention %q", v.Blocking, tc.want)
			}
		})
	}
}

func TestBrokerDrainProgress(t *testing.T) {
	s := drainSample(0, 90, 10, 2, 500)
	s.Queues[0].AckRate = 20
	v := JudgeDrain([]activities.RabbitSample{s}, drainRule)
	if v.MessagesLeft != 100 || v.AckRate != 20 || v.Estimate != 5*time.Second {
		t.Fatalf("progress: %+v", v)
	}
}
