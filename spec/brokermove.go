package spec

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/workflows"
)

// BrokerMove validates a broker move spec statically and applies defaults. Nothing here
// contacts a broker: a bad spec is refused before either is called. (Whether each queue
// exists on the old broker is for preflight, which only reads.) The first problem is
// returned as a *FieldError.
func BrokerMove(s *ferryv1.BrokerMoveSpec) (workflows.BrokerMoveSpec, error) {
	const p = "brokerMove"
	out := workflows.BrokerMoveSpec{}
	if s == nil {
		return out, fieldErr(p, "missing")
	}
	var err error
	if out.Old, err = brokerEndpoint(p+".oldBroker", s.GetOldBroker()); err != nil {
		return out, err
	}
	if out.New, err = brokerEndpoint(p+".newBroker", s.GetNewBroker()); err != nil {
		return out, err
	}
	if strings.EqualFold(out.Old.AMQPAddress, out.New.AMQPAddress) {
		return out, fieldErr(p+".newBroker.amqpAddress", "%s is also the old broker's; the new broker must be another one", out.New.AMQPAddress)
	}
	if strings.EqualFold(out.Old.ManagementURL, out.New.ManagementURL) {
		return out, fieldErr(p+".newBroker.managementUrl", "%s is also the old broker's; the new broker must be another one", out.New.ManagementURL)
	}
	if out.VHost = s.GetVhost(); out.VHost == "" {
		out.VHost = "/"
	}
	if len(s.GetQueues()) == 0 {
		return out, fieldErr(p+".queues", "required: the queues on the old broker to drain")
	}
	for i, q := range s.GetQueues() {
		f := fmt.Sprintf("%s.queues[%d]", p, i)
		// RabbitMQ's own limits: at most 255 bytes; amq. is reserved for the broker.
		switch {
		case strings.TrimSpace(q) == "" || len(q) > 255:
			return out, fieldErr(f, "%q is not a queue name (1..255 bytes)", q)
		case strings.HasPrefix(q, "amq."):
			return out, fieldErr(f, "%q is a server-named or reserved queue (amq.*); name durable queues only", q)
		}
		for _, prev := range out.Queues {
			if prev == q {
				return out, fieldErr(f, "%q is listed twice", q)
			}
		}
		out.Queues = append(out.Queues, q)
	}
	seen := map[string]string{}
	// A record shared by a producer and a consumer would move both at once, which is no
	// drain order at all; within one group sharing is fine (they move together anyway).
	recordGroup := map[string]string{}
	for _, g := range []struct {
		field string
		in    []*ferryv1.BrokerApplication
		out   *[]workflows.BrokerApplication
	}{{p + ".producers", s.GetProducers(), &out.Producers}, {p + ".consumers", s.GetConsumers(), &out.Consumers}} {
		if len(g.in) == 0 {
			return out, fieldErr(g.field, "required: at least one application with its connectionName and switch")
		}
		for i, a := range g.in {
			f := fmt.Sprintf("%s[%d]", g.field, i)
			app, err := brokerApp(f, a, out.New)
			if err != nil {
				return out, err
			}
			if other, dup := seen[app.ConnectionName]; dup {
				return out, fieldErr(f+".connectionName", "%q is also %s; ferry finds an application's connections by this name, so each must be unique", app.ConnectionName, other)
			}
			seen[app.ConnectionName] = f
			if other, ok := recordGroup[app.Record.Name]; ok && other != g.field {
				return out, fieldErr(f+".switch.record.name", "%s is also a record of %s; producers and consumers must resolve different names to move in drain order", app.Record.Name, other)
			}
			recordGroup[app.Record.Name] = g.field
			*g.out = append(*g.out, app)
		}
	}
	switch o := strings.TrimSpace(s.GetOrder()); o {
	case "", workflows.BrokerOrderProducersFirst:
		out.Order = workflows.BrokerOrderProducersFirst
	case workflows.BrokerOrderConsumersFirst:
		out.Order = o
	default:
		return out, fieldErr(p+".order", "%q: use producersFirst or consumersFirst", o)
	}
	out.DrainTimeout = 10 * time.Minute
	if d := s.GetDrainTimeout(); d != nil {
		if out.DrainTimeout = d.AsDuration(); out.DrainTimeout <= 0 {
			return out, fieldErr(p+".drainTimeout", "%s: must be positive (e.g. 10m)", out.DrainTimeout)
		}
	}
	out.StatsInterval = 5 * time.Second
	if d := s.GetStatisticsInterval(); d != nil {
		// RabbitMQ refuses intervals under 100ms; an hour would make a drain a day.
		if out.StatsInterval = d.AsDuration(); out.StatsInterval < 100*time.Millisecond || out.StatsInterval > time.Minute {
			return out, fieldErr(p+".statisticsInterval", "%s: the broker's collect_statistics_interval, between 100ms and 1m (RabbitMQ's default is 5s)", out.StatsInterval)
		}
	}
	out.MoveTimeout = 2 * time.Minute
	if d := s.GetMoveTimeout(); d != nil {
		if out.MoveTimeout = d.AsDuration(); out.MoveTimeout < 4*out.StatsInterval {
			return out, fieldErr(p+".moveTimeout", "%s: at least four statistics intervals (%s): the broker lists a new connection only an interval or more after it opened", out.MoveTimeout, 4*out.StatsInterval)
		}
	}
	if out.DrainTimeout < 2*out.StatsInterval {
		return out, fieldErr(p+".drainTimeout", "%s: at least two statistics intervals (%s), the least a drain can be proven in", out.DrainTimeout, 2*out.StatsInterval)
	}
	out.ImportDefinitions, out.RequireApproval = s.GetImportDefinitions(), s.GetRequireApproval()
	return out, nil
}

func brokerEndpoint(field string, b *ferryv1.BrokerEndpoint) (workflows.BrokerEndpoint, error) {
	var out workflows.BrokerEndpoint
	if b == nil {
		return out, fieldErr(field, "required: amqpAddress, managementUrl, user and password")
	}
	var err error
	if out.AMQPAddress, err = hostPort(field+".amqpAddress", b.GetAmqpAddress()); err != nil {
		return out, err
	}
	out.ManagementURL = strings.TrimRight(strings.TrimSpace(b.GetManagementUrl()), "/")
	if u, err := url.Parse(out.ManagementURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return out, fieldErr(field+".managementUrl", "%q is not an http(s) URL, e.g. http://10.0.2.7:15672", b.GetManagementUrl())
	}
	if out.User = strings.TrimSpace(b.GetUser()); out.User == "" {
		return out, fieldErr(field+".user", "required: the management user (monitoring or administrator tag)")
	}
	if out.Password, err = dbSecret(field+".password", b.GetPassword(), true); err != nil {
		return out, err
	}
	return out, nil
}

func brokerApp(field string, a *ferryv1.BrokerApplication, newBroker workflows.BrokerEndpoint) (workflows.BrokerApplication, error) {
	var out workflows.BrokerApplication
	if out.ConnectionName = strings.TrimSpace(a.GetConnectionName()); out.ConnectionName == "" {
		return out, fieldErr(field+".connectionName", "required: the application's AMQP connection name (client property connection_name)")
	}
	sw := a.GetSwitch()
	if sw == nil {
		return out, fieldErr(field+".switch", "required: the record %s resolves for the broker and its new value; without a switch it cannot be moved", out.ConnectionName)
	}
	var err error
	if out.Record, err = dbRecord(field+".switch.record", sw.GetRecord(), true); err != nil {
		return out, err
	}
	out.NewValue = strings.TrimSpace(sw.GetNewValue())
	if out.NewValue == "" {
		// An A record's default is the new broker's address: a record carries no port.
		host, _, _ := net.SplitHostPort(newBroker.AMQPAddress)
		if out.Record.Type != "A" || net.ParseIP(host) == nil {
			return out, fieldErr(field+".switch.newValue", "required: the record's value for the new broker")
		}
		out.NewValue = host
	}
	if out.Record.Type == "A" && net.ParseIP(out.NewValue) == nil {
		return out, fieldErr(field+".switch.newValue", "%q is not an IP address, which an A record needs", out.NewValue)
	}
	return out, nil
}
