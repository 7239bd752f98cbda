package amqpclients

import (
	"context"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Consumer consumes Queue with manual acks, acking each message after recording it. A
// message delivered again (its first delivery's connection closed before the ack reached
// the broker) is counted as a duplicate: deduplicating by id must not hide a loss, so
// losses and duplicates are counted apart.
type Consumer struct {
	o          Options
	mu         sync.Mutex
	seen       map[int64]int    // message -> deliveries
	from       map[int64]string // message -> broker address of its first delivery
	lastAck    map[string]time.Time
	reconnects int
}

// LastAck is when the consumer last acked a message delivered by the broker at addr (zero
// if never): the moment a drain of that broker's queue could be proven from.
func (c *Consumer) LastAck(addr string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastAck[addr]
}

// NewConsumer returns a consumer; Run starts it.
func NewConsumer(o Options) *Consumer {
	o.defaults()
	return &Consumer{o: o, seen: map[int64]int{}, from: map[int64]string{}, lastAck: map[string]time.Time{}}
}

// Run consumes until ctx ends, then closes its connection.
func (c *Consumer) Run(ctx context.Context) {
	r := &resolver{o: &c.o}
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			c.mu.Lock()
			c.reconnects++
			c.mu.Unlock()
			sleep(ctx, c.o.Retry)
		}
		addr := r.resolve(time.Now())
		conn, err := dial(&c.o, addr)
		if err != nil {
			continue
		}
		c.consumeOn(ctx, conn, addr)
		_ = conn.Close()
		r.addr = ""
	}
}

func (c *Consumer) consumeOn(ctx context.Context, conn *amqp.Connection, addr string) {
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	if err := ch.Qos(c.o.Prefetch, 0, false); err != nil {
		return
	}
	deliveries, err := ch.ConsumeWithContext(ctx, c.o.Queue, "", false, false, false, false, nil)
	if err != nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case d, ok := <-deliveries:
			if !ok {
				return
			}
			n, _ := strconv.ParseInt(d.MessageId, 10, 64)
			c.mu.Lock()
			c.seen[n]++
			if c.seen[n] == 1 {
				c.from[n] = addr
			}
			c.mu.Unlock()
			if d.Ack(false) == nil {
				c.mu.Lock()
				c.lastAck[addr] = time.Now()
				c.mu.Unlock()
			}
		}
	}
}
