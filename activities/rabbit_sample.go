package activities

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"
)

// SampleRabbitInput names the broker and the queues and exchanges to read.
type SampleRabbitInput struct {
	Broker    RabbitBroker
	Queues    []string
	Exchanges []string // the exchanges publishing into Queues; empty: every exchange of the vhost
	// RateAge is the window the broker computes its rates over (whole seconds, at least
	// 1; zero: the management API's default of 5s). A short window lets a drain see a
	// producer's rate fall to 0 sooner after it stopped.
	RateAge time.Duration
}

// RabbitQueueSample is one queue as the management API showed it.
type RabbitQueueSample struct {
	Name      string
	Missing   bool // not on the broker
	Ready     int64
	Unacked   int64
	Consumers int
	// Published and Acked are the queue's totals; PublishRate and AckRate the broker's
	// per-second rates over its last statistics interval.
	Published, Acked     int64
	PublishRate, AckRate float64
}

// RabbitExchangeSample is one exchange's inbound publishing.
type RabbitExchangeSample struct {
	Name          string
	PublishIn     int64
	PublishInRate float64
}

// RabbitConnectionSample is one client connection, named by the client
// (connection_name, how ferry ties a connection to an application) and by the broker.
type RabbitConnectionSample struct {
	Name       string // the broker's name, the one DELETE /api/connections/{name} takes
	ClientName string
	// Publishing and Consuming count the connection's channels that have published at
	// least once and that hold consumers.
	Publishing, Consuming int
}

// RabbitSample is one reading of a broker's vhost. The figures are the management
// plugin's statistics, refreshed every collect_statistics_interval (5s by default): two
// samples within one interval may be the same reading. Judging them is the drain
// oracle's job (workflows.JudgeDrain), not the sampler's.
type RabbitSample struct {
	At          time.Time
	Queues      []RabbitQueueSample
	Exchanges   []RabbitExchangeSample
	Connections []RabbitConnectionSample
}

// SampleRabbit reads queues, exchanges, connections and channels of the broker's vhost.
func (a *Rabbit) SampleRabbit(ctx context.Context, in SampleRabbitInput) (RabbitSample, error) {
	m, err := a.mgmt(in.Broker)
	if err != nil {
		return RabbitSample{}, err
	}
	v := "/" + m.vhostPath()
	rates := ""
	if in.RateAge > 0 {
		sec := max(int(in.RateAge/time.Second), 1)
		rates = fmt.Sprintf("?msg_rates_age=%d&msg_rates_incr=%d", sec, sec)
	}
	var queues []mgmtQueue
	var exchanges []mgmtExchange
	var conns []mgmtConnection
	var chans []mgmtChannel
	for _, c := range []struct {
		path string
		out  any
	}{
		{"/api/queues" + v + rates, &queues}, {"/api/exchanges" + v + rates, &exchanges},
		{"/api/vhosts" + v + "/connections", &conns}, {"/api/vhosts" + v + "/channels", &chans},
	} {
		if err := m.do(ctx, "GET", c.path, nil, c.out); err != nil {
			return RabbitSample{}, err
		}
	}
	s := RabbitSample{At: time.Now()}
	if activity.IsActivity(ctx) {
		s.At = activity.GetInfo(ctx).StartedTime
	}
	for _, name := range in.Queues {
		i := slices.IndexFunc(queues, func(q mgmtQueue) bool { return q.Name == name })
		if i < 0 {
			s.Queues = append(s.Queues, RabbitQueueSample{Name: name, Missing: true})
			continue
		}
		q := queues[i]
		s.Queues = append(s.Queues, RabbitQueueSample{Name: name, Ready: q.Ready, Unacked: q.Unacked, Consumers: q.Consumers,
			Published: q.MessageStats.Publish, Acked: q.MessageStats.Ack,
			PublishRate: q.MessageStats.PublishDetails.Rate, AckRate: q.MessageStats.AckDetails.Rate})
	}
	for _, e := range exchanges {
		if len(in.Exchanges) > 0 && !slices.Contains(in.Exchanges, e.Name) {
			continue
		}
		s.Exchanges = append(s.Exchanges, RabbitExchangeSample{Name: e.Name, PublishIn: e.MessageStats.PublishIn,
			PublishInRate: e.MessageStats.PublishInDetails.Rate})
	}
	for _, c := range conns {
		cs := RabbitConnectionSample{Name: c.Name, ClientName: c.ClientProperties.ConnectionName}
		for _, ch := range chans {
			if ch.ConnectionDetails.Name != c.Name {
				continue
			}
			if ch.MessageStats.Publish > 0 {
				cs.Publishing++
			}
			if ch.Consumers > 0 {
				cs.Consuming++
			}
		}
		s.Connections = append(s.Connections, cs)
	}
	return s, nil
}
