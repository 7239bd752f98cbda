package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/ferryhq/ferry/internal/rabbitpair"
	"github.com/ferryhq/ferry/sandbox/amqpclients"
)

// The broker move's playground in `ferry dev` (examples/broker-move.yaml): when RabbitMQ
// is installed, two nodes, blue (127.0.0.4, the old broker, with the queue "orders") and
// green (127.0.0.5, the new one, empty: the example imports the definitions), one AMQP
// port 5682, management on 127.0.0.1:15682 and :15683; a zone events.internal. whose
// records mq-pub (the producer's) and mq (the consumer's) point at blue; and the sandbox's
// producer (orders-api) and consumer (billing-worker) running through them, their tally
// logged every 30 seconds. The nodes take 10-20 seconds, so they start in the background.
// Without RabbitMQ it says how to get it and carries on.

const (
	devRabbitAMQPPort = 5682
	devRabbitQueue    = "orders"
)

var devRabbitMgmtPorts = [2]int{15682, 15683}

// devRabbit is the playground's line in `ferry dev`'s table and what stops it.
type devRabbit struct {
	off  string // why it is off, with how to enable it; "" when it starts
	stop func()
}

func (r *devRabbit) describe(tw io.Writer) {
	if r.off != "" {
		fmt.Fprintf(tw, "RabbitMQ\t-\t%s\n", r.off)
		return
	}
	fmt.Fprintf(tw, "RabbitMQ\tblue 127.0.0.4:%d, green 127.0.0.5:%d\tstarting in the background (management :%d, :%d); try examples/broker-move.yaml\n",
		devRabbitAMQPPort, devRabbitAMQPPort, devRabbitMgmtPorts[0], devRabbitMgmtPorts[1])
}

// startDevRabbit starts it all in the background.
func startDevRabbit(ctx context.Context, log *slog.Logger, sb *devSandbox) *devRabbit {
	log = log.With("component", "rabbitmq")
	// Like mariadbd and prometheus, an optional server is used when it is on the PATH.
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		return &devRabbit{off: "not installed: apt-get install rabbitmq-server, then restart ferry dev, to run examples/broker-move.yaml", stop: func() {}}
	}
	if _, _, _, err := rabbitpair.Find(); err != nil {
		return &devRabbit{off: err.Error(), stop: func() {}}
	}
	var mu sync.Mutex
	var stops []func()
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		sctx, scancel := context.WithTimeout(bctx, 2*time.Minute)
		defer scancel()
		log.Info("starting two RabbitMQ nodes for the broker move playground (10-20s)")
		pair, err := rabbitpair.Start(sctx, rabbitpair.Options{AMQPPort: devRabbitAMQPPort, MgmtPorts: devRabbitMgmtPorts})
		if err != nil {
			log.Warn("broker move playground off: start rabbitmq", "error", err)
			return
		}
		mu.Lock()
		stops = append(stops, pair.Stop)
		mu.Unlock()
		if err := devRabbitSetup(sctx, sb.url, pair); err != nil {
			log.Warn("broker move playground off", "error", err)
			return
		}
		if os.Getenv("FERRY_RABBIT_PASSWORD") == "" {
			_ = os.Setenv("FERRY_RABBIT_PASSWORD", rabbitpair.AdminPassword) // the example's reference, for the in-process worker
		}
		opts := func(record, name string) amqpclients.Options {
			return amqpclients.Options{Resolver: sb.sb.AWS(), Record: record, Port: devRabbitAMQPPort, User: rabbitpair.AdminUser,
				Password: rabbitpair.AdminPassword, ConnectionName: name, Queue: devRabbitQueue, Interval: 50 * time.Millisecond}
		}
		prod := amqpclients.NewProducer(opts("mq-pub.events.internal.", "orders-api"))
		cons := amqpclients.NewConsumer(opts("mq.events.internal.", "billing-worker"))
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); prod.Run(bctx) }()
		go func() { defer wg.Done(); cons.Run(bctx) }()
		log.Info("broker move playground up", "old", pair.Blue.AMQPAddr(), "new", pair.Green.AMQPAddr(),
			"management", pair.Blue.MgmtURL()+" "+pair.Green.MgmtURL(), "try", "ferry start -f examples/broker-move.yaml --watch")
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-bctx.Done():
				wg.Wait()
				return
			case <-t.C:
				c := amqpclients.Count(prod, cons)
				log.Info("orders-api -> orders -> billing-worker", "confirmed", c.Confirmed, "received", c.Received,
					"duplicated", c.Duplicated, "missing", c.Missing, "confirmed by", c.ConfirmedBy, "received from", c.ReceivedFrom)
			}
		}
	}()
	return &devRabbit{stop: func() {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, s := range stops {
			s()
		}
	}}
}

// devRabbitSetup declares the queue on blue (green stays empty: the example imports the
// definitions) and creates the playground's zone in the sandbox's Route 53.
func devRabbitSetup(ctx context.Context, endpoint string, pair *rabbitpair.Pair) error {
	c, err := amqp.Dial(pair.Blue.AMQPURL())
	if err != nil {
		return err
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(devRabbitQueue, true, false, false, false, nil); err != nil {
		return err
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("sandbox", "sandbox", "")))
	if err != nil {
		return err
	}
	r53 := route53.NewFromConfig(cfg, func(o *route53.Options) { o.BaseEndpoint = aws.String(endpoint) })
	z, err := r53.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: aws.String("events.internal."), CallerReference: aws.String("ferry-dev-events.internal.")})
	if err != nil {
		return err
	}
	var changes []r53types.Change
	for _, rec := range []string{"mq-pub.events.internal.", "mq.events.internal."} {
		changes = append(changes, r53types.Change{Action: r53types.ChangeActionCreate, ResourceRecordSet: &r53types.ResourceRecordSet{
			Name: aws.String(rec), Type: r53types.RRTypeA, TTL: aws.Int64(5), ResourceRecords: []r53types.ResourceRecord{{Value: aws.String(pair.Blue.Host)}}}})
	}
	_, err = r53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: z.HostedZone.Id, ChangeBatch: &r53types.ChangeBatch{Changes: changes}})
	return err
}
