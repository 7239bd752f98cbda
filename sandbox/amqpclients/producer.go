package amqpclients

import (
	"context"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Producer publishes numbered messages (MessageId 1, 2, ...) to Queue through the default
// exchange, one at a time, each waited for its confirm. A message not confirmed (the
// connection closed under it, a nack) is published again after reconnecting: at least
// once, so a loss can only be a confirmed message never delivered.
type Producer struct {
	o          Options
	mu         sync.Mutex
	next       int64            // the next new message number
	confirmed  map[int64]string // message -> broker address that confirmed it
	reconnects int
}

// NewProducer returns a producer; Run starts it.
func NewProducer(o Options) *Producer {
	o.defaults()
	return &Producer{o: o, next: 1, confirmed: map[int64]string{}}
}

// Run publishes until ctx ends, then closes its connection.
func (p *Producer) Run(ctx context.Context) {
	r := &resolver{o: &p.o}
	var pending int64 // a message to publish again, 0 for none
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			p.mu.Lock()
			p.reconnects++
			p.mu.Unlock()
			sleep(ctx, p.o.Retry)
		}
		addr := r.resolve(time.Now())
		conn, err := dial(&p.o, addr)
		if err != nil {
			continue
		}
		pending = p.publishOn(ctx, conn, addr, pending)
		_ = conn.Close()
		// A closed connection means "look again": the record may have moved.
		r.addr = ""
	}
}

// publishOn publishes on conn until it fails or ctx ends; it returns the message left
// unconfirmed, if any.
func (p *Producer) publishOn(ctx context.Context, conn *amqp.Connection, addr string, pending int64) int64 {
	ch, err := conn.Channel()
	if err != nil {
		return pending
	}
	if err := ch.Confirm(false); err != nil {
		return pending
	}
	t := time.NewTicker(p.o.Interval)
	defer t.Stop()
	for ctx.Err() == nil {
		n := pending
		if n == 0 {
			p.mu.Lock()
			n = p.next
			p.next++
			p.mu.Unlock()
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		dc, err := ch.PublishWithDeferredConfirmWithContext(pctx, "", p.o.Queue, false, false,
			amqp.Publishing{MessageId: strconv.FormatInt(n, 10), DeliveryMode: amqp.Persistent, Timestamp: time.Now()})
		ok := false
		if err == nil {
			ok, err = dc.WaitContext(pctx)
		}
		cancel()
		if err != nil || !ok {
			return n
		}
		p.mu.Lock()
		p.confirmed[n] = addr
		p.mu.Unlock()
		pending = 0
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return pending
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
