package activities

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
)

// CloseRabbitConnectionsInput names the applications whose connections to close.
type CloseRabbitConnectionsInput struct {
	Broker RabbitBroker
	// Clients are the applications' connection names (the client property
	// connection_name): a DNS switch does not move a live AMQP connection, so each of
	// theirs on this broker is closed and the client reconnects through the new record.
	Clients []string
	Reason  string // shown to the client in the connection.close frame
}

// CloseRabbitConnectionsResult lists the broker's names of the connections closed.
type CloseRabbitConnectionsResult struct {
	Closed []string
}

// CloseRabbitConnections closes every connection of Clients on the broker (DELETE
// /api/connections/{name} with an X-Reason header). A connection already gone is not an
// error: a retry after a partial failure closes the rest.
func (a *Rabbit) CloseRabbitConnections(ctx context.Context, in CloseRabbitConnectionsInput) (CloseRabbitConnectionsResult, error) {
	m, err := a.mgmt(in.Broker)
	if err != nil {
		return CloseRabbitConnectionsResult{}, err
	}
	var conns []mgmtConnection
	if err := m.do(ctx, "GET", "/api/vhosts/"+m.vhostPath()+"/connections", nil, &conns); err != nil {
		return CloseRabbitConnectionsResult{}, err
	}
	var res CloseRabbitConnectionsResult
	for _, c := range conns {
		if !slices.Contains(in.Clients, c.ClientProperties.ConnectionName) {
			continue
		}
		h := http.Header{}
		if in.Reason != "" {
			h.Set("X-Reason", in.Reason)
		}
		err := m.do(ctx, "DELETE", "/api/connections/"+url.PathEscape(c.Name), h, nil)
		if err != nil && !isRabbitNotFound(err) {
			return res, fmt.Errorf("close %s's connection %s: %w", c.ClientProperties.ConnectionName, c.Name, err)
		}
		res.Closed = append(res.Closed, c.Name)
	}
	return res, nil
}
