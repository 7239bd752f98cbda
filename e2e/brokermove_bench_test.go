package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
		testenv.BenchInfo(b, "broker move", fmt.Sprintf("run %d: drained %s after the last ack on the old broker (%.1f intervals); total %s, mandated %s",
			i+1, delay.Round(10*time.Millisecond), delays[i], total.Round(10*time.Millisecond), mandated))
		w.stopClients()
	}
	slices.Sort(delays)
	slices.Sort(ratios)
	testenv.BenchRow(b, "broker move: drain detection delay, last ack on the old queue to drained (median of 5, statistics intervals of 1s)",
		fmt.Sprintf("%.1f", delays[2]), "<= 2.5", delays[2] <= 2.5)
	testenv.BenchRow(b, "broker move: total move time / mandated waits (median of 5; TTLs, drain hold, one interval per application)",
		fmt.Sprintf("%.2f", ratios[2]), "<= 1.2", ratios[2] <= 1.2)
}
