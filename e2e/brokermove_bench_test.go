package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/ferryhq/ferry/activities"

	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/workflows"
)

// BenchmarkBrokerMove runs five producersFirst moves on the real pair (statistics
// interval 1s, records' TTL 1s, the sandbox's clients publishing every 5ms) and measures:
// the drain detection delay, from the consumer's last ack on the old broker to the
// workflow's "drained", in statistics intervals; and each move's total time against the
// waits it mandates (the two records' TTLs, the drain's hold of two intervals, and one
// interval per application between closing its connections and looking again).
func BenchmarkBrokerMove(b *testing.B) {
	var delays, ratios []float64
	var runs []string
	timeline := ""
	for i := range 5 {
		w := startBrokerWorld(b, fmt.Sprintf("bench%d", i))
		w.declare(b, w.pair.Blue, w.pair.Green)
		w.startConsumer(b)
		w.startProducer(b)
		w.listedOnBlue(b, w.prodName, w.consName)
		id := w.start(b, w.specYAML(workflows.BrokerOrderProducersFirst))
		res, err := w.wait(b, id)
		require.NoError(b, err)
		require.Equal(b, workflows.StateCompleted, res.State, res.Message)
		interval := w.pair.StatsInterval
		last := w.cons.LastAck(w.pair.Blue.AMQPAddr())
		delay := res.DrainedAt.Sub(last)
		d, err := w.Client.DescribeWorkflowExecution(w.ctx, id, "")
		require.NoError(b, err)
		info := d.GetWorkflowExecutionInfo()
		total := info.GetCloseTime().AsTime().Sub(info.GetStartTime().AsTime())
		mandated := 2*time.Second + 2*interval + 2*interval
		delays = append(delays, float64(delay)/float64(interval))
		ratios = append(ratios, float64(total)/float64(mandated))
		runs = append(runs, fmt.Sprintf("%.1fs/%.1fs", delay.Seconds(), total.Seconds()))
		if i == 0 {
			// Where the delay goes, once: go test truncates a benchmark's long output.
			timeline = drainTimeline(b, w, id, last)
		}
		w.stopClients()
	}
	slices.Sort(delays)
	slices.Sort(ratios)
	testenv.BenchInfo(b, "broker move: each run, drain delay / total (mandated 6s)", strings.Join(runs, ", "))
	testenv.BenchInfo(b, "broker move: run 1's drain readings, from the last ack", timeline)
	testenv.BenchRow(b, "broker move: drain detection delay, last ack on the old queue to drained (median of 5, statistics intervals of 1s)",
		fmt.Sprintf("%.1f", delays[2]), "<= 2.5", delays[2] <= 2.5)
	testenv.BenchRow(b, "broker move: total move time / mandated waits (median of 5; TTLs, drain hold, one interval per application)",
		fmt.Sprintf("%.2f", ratios[2]), "<= 1.2", ratios[2] <= 1.2)
}

// drainTimeline replays the oracle over the old broker's readings the run recorded (its
// SampleRabbit results with queues) and says, relative to the last ack, until when each
// reason kept the drain from being proven: where the delay goes.
func drainTimeline(b *testing.B, w *brokerWorld, id string, lastAck time.Time) string {
	it := w.Client.GetWorkflowHistory(w.ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	dc := converter.GetDefaultDataConverter()
	var samples []activities.RabbitSample
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(b, err)
		a := ev.GetActivityTaskCompletedEventAttributes()
		if a == nil {
			continue
		}
		var s activities.RabbitSample
		if dc.FromPayloads(a.GetResult(), &s) != nil || len(s.Queues) == 0 || s.Queues[0].Name != w.queue {
			continue
		}
		samples = append(samples, s)
	}
	var out []string
	prev := ""
	for i := range samples {
		v := workflows.JudgeDrain(samples[:i+1], workflows.DrainRule{StatsInterval: w.pair.StatsInterval, Intervals: 2, Producers: []string{w.prodName}})
		why := v.Blocking
		if j := strings.IndexAny(why, "(:"); j > 0 {
			why = strings.TrimSpace(why[:j])
		}
		why = strings.ReplaceAll(why, w.queue, "q")
		if v.Drained {
			why = "drained"
		}
		if why != prev {
			out = append(out, fmt.Sprintf("%+.1fs %s", samples[i].At.Sub(lastAck).Seconds(), why))
			prev = why
		}
	}
	return strings.Join(out, " | ")
}
