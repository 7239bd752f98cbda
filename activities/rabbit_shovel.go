package activities

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
)

// RabbitShovelInput declares one dynamic shovel: it runs on Broker (the source's broker,
// whose shovel plugin must be enabled) and moves Queue's messages to the same queue on
// Dest, acknowledging each on the source only once the destination confirmed it
// (ack-mode on-confirm: the only mode that loses nothing when either side fails).
type RabbitShovelInput struct {
	Broker RabbitBroker
	Name   string
	Queue  string
	// Source and Dest are the AMQP endpoints (host:port); the credentials are the
	// brokers' management users, resolved on the worker and stored in the shovel's
	// definition on Broker (RabbitMQ keeps a shovel's URIs in its runtime parameters).
	Source, Dest RabbitAMQP
	// Wait bounds how long to wait for the shovel to report "running" (default 30s).
	Wait time.Duration
}

// RabbitAMQP is one AMQP endpoint with the credentials a shovel connects with.
type RabbitAMQP struct {
	Address  string
	User     string
	Password Secret
	VHost    string
}

func (e RabbitAMQP) uri(what string) (string, error) {
	pw, err := e.Password.Resolve(what + " password")
	if err != nil {
		return "", badInput("%v", err)
	}
	vh := e.VHost
	if vh == "" {
		vh = "/"
	}
	u := url.URL{Scheme: "amqp", User: url.UserPassword(e.User, pw), Host: e.Address, RawPath: "/" + url.PathEscape(vh), Path: "/" + vh}
	return u.String(), nil
}

type mgmtShovelStatus struct {
	Name   string `json:"name"`
	VHost  string `json:"vhost"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

// CreateRabbitShovel declares the shovel (a PUT, so a retry or a second run changes
// nothing) and waits until the broker reports it running.
func (a *Rabbit) CreateRabbitShovel(ctx context.Context, in RabbitShovelInput) error {
	m, err := a.mgmt(in.Broker)
	if err != nil {
		return err
	}
	src, err := in.Source.uri("shovel source")
	if err != nil {
		return err
	}
	dst, err := in.Dest.uri("shovel destination")
	if err != nil {
		return err
	}
	def := map[string]any{"value": map[string]any{
		"src-protocol": "amqp091", "src-uri": src, "src-queue": in.Queue,
		"dest-protocol": "amqp091", "dest-uri": dst, "dest-queue": in.Queue,
		"ack-mode": "on-confirm", "src-delete-after": "never",
	}}
	path := "/api/parameters/shovel/" + m.vhostPath() + "/" + url.PathEscape(in.Name)
	if err := m.doBody(ctx, "PUT", path, nil, def, nil); err != nil {
		return fmt.Errorf("declare shovel %s: %w", in.Name, err)
	}
	wait := in.Wait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	deadline := time.Now().Add(wait)
	last := "not listed yet"
	for {
		var list []mgmtShovelStatus
		if err := m.do(ctx, "GET", "/api/shovels/"+m.vhostPath(), nil, &list); err != nil {
			return err
		}
		for _, s := range list {
			if s.Name == in.Name {
				if s.State == "running" {
					return nil
				}
				last = strings.TrimSpace(s.State + " " + s.Reason)
			}
		}
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, last)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("shovel %s on the %s broker is not running after %s: %s", in.Name, in.Broker.Name, wait, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// DeleteRabbitShovelInput names a shovel to delete.
type DeleteRabbitShovelInput struct {
	Broker RabbitBroker
	Name   string
}

// DeleteRabbitShovel deletes the shovel; one already gone is not an error. With ack-mode
// on-confirm a message in flight is not yet acknowledged on the source, so it is requeued
// there, never lost (it may be delivered twice: once through the shovel, once again).
func (a *Rabbit) DeleteRabbitShovel(ctx context.Context, in DeleteRabbitShovelInput) error {
	m, err := a.mgmt(in.Broker)
	if err != nil {
		return err
	}
	err = m.do(ctx, "DELETE", "/api/parameters/shovel/"+m.vhostPath()+"/"+url.PathEscape(in.Name), nil, nil)
	if err != nil && !isRabbitNotFound(err) {
		return fmt.Errorf("delete shovel %s: %w", in.Name, err)
	}
	return nil
}

// RemoveRabbitDefinitionsInput names definitions ferry imported into a broker, as
// RabbitDefinitions names them ("exchange shop", "queue orders", "policy ttl").
type RemoveRabbitDefinitionsInput struct {
	Broker RabbitBroker
	Items  []string
}

// RemoveRabbitDefinitionsResult says what was removed and what was kept and why.
type RemoveRabbitDefinitionsResult struct {
	Removed []string
	Kept    []string // "queue orders: not empty or in use"
}

// RemoveRabbitDefinitions deletes what an import added, queues only when empty and
// unused and exchanges only when unused (the broker checks both atomically), so nothing
// anyone uses or anything holding a message is deleted. Bindings go with their queue or
// exchange; one between definitions that stay is kept and reported.
func (a *Rabbit) RemoveRabbitDefinitions(ctx context.Context, in RemoveRabbitDefinitionsInput) (RemoveRabbitDefinitionsResult, error) {
	var res RemoveRabbitDefinitionsResult
	m, err := a.mgmt(in.Broker)
	if err != nil {
		return res, err
	}
	// Queues before exchanges: an exchange is "unused" only once its bindings are gone.
	for _, kind := range []string{"policy", "queue", "exchange"} {
		for _, it := range in.Items {
			k, name, _ := strings.Cut(it, " ")
			if k != kind {
				continue
			}
			var path string
			switch k {
			case "policy":
				path = "/api/policies/" + m.vhostPath() + "/" + url.PathEscape(name)
			case "queue":
				path = "/api/queues/" + m.vhostPath() + "/" + url.PathEscape(name) + "?if-empty=true&if-unused=true"
			case "exchange":
				path = "/api/exchanges/" + m.vhostPath() + "/" + url.PathEscape(name) + "?if-unused=true"
			}
			err := m.do(ctx, "DELETE", path, nil, nil)
			switch {
			case err == nil || isRabbitNotFound(err):
				res.Removed = append(res.Removed, it)
			case isRabbitStatus(err, http.StatusBadRequest):
				res.Kept = append(res.Kept, it+": not empty or in use")
			default:
				return res, err
			}
		}
	}
	for _, it := range in.Items {
		if strings.HasPrefix(it, "binding ") {
			res.Kept = append(res.Kept, it+": removed with its queue or exchange, if they were")
		}
	}
	return res, nil
}
