package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// RabbitBroker is how a worker reaches one RabbitMQ broker's management API. The password
// is a secret reference, resolved on the worker for each call.
type RabbitBroker struct {
	Name          string // "old" or "new", for messages
	ManagementURL string // e.g. http://127.0.0.1:15672
	User          string
	Password      Secret
	VHost         string
}

// Error type of a management API answer that no retry can fix (bad credentials, a vhost
// that does not exist).
const ErrRabbitManagement = "RabbitManagement"

// Rabbit holds the activities that read and steer RabbitMQ brokers through the management
// HTTP API, the only interface that shows a broker's connections, consumers and
// statistics. HTTP is injected (nil: a client with a 10s timeout; never http.DefaultClient).
type Rabbit struct {
	HTTP *http.Client
}

func (a *Rabbit) client() *http.Client {
	if a != nil && a.HTTP != nil {
		return a.HTTP
	}
	return &http.Client{Timeout: 10 * time.Second}
}

// mgmt is one broker's management API with the password resolved.
type mgmt struct {
	b        RabbitBroker
	password string
	http     *http.Client
}

func (a *Rabbit) mgmt(b RabbitBroker) (*mgmt, error) {
	u, err := url.Parse(b.ManagementURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, badInput("%s broker: management URL %q is not an absolute http(s) URL", b.Name, b.ManagementURL)
	}
	pw, err := b.Password.Resolve(b.Name + " broker password")
	if err != nil {
		return nil, badInput("%v", err)
	}
	return &mgmt{b: b, password: pw, http: a.client()}, nil
}

// vhostPath is the vhost as one escaped path segment ("/" is %2F).
func (m *mgmt) vhostPath() string { return url.PathEscape(m.vhost()) }

func (m *mgmt) vhost() string {
	if m.b.VHost == "" {
		return "/"
	}
	return m.b.VHost
}

// do calls the API; 401, 403 and 404 are permanent (ErrRabbitManagement), anything else
// unexpected is retryable: a broker restarting answers 503 for a while.
func (m *mgmt) do(ctx context.Context, method, path string, header http.Header, out any) error {
	return m.doBody(ctx, method, path, header, nil, out)
}

// doBody is do with a JSON request body (nil for none).
func (m *mgmt) doBody(ctx context.Context, method, path string, header http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(m.b.ManagementURL, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth(m.b.User, m.password)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s broker %s %s: %w", m.b.Name, method, path, err)
	}
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return permanent(ErrRabbitManagement, nil, "%s broker %s %s: %s: check the user and its password reference (the user needs the monitoring or administrator tag)", m.b.Name, method, path, resp.Status)
	case resp.StatusCode == http.StatusNotFound:
		return permanent(ErrRabbitManagement, statusError(resp.StatusCode), "%s broker %s %s: not found (%s)", m.b.Name, method, path, strings.TrimSpace(string(respBody)))
	case resp.StatusCode >= 300:
		return statusMessage{statusError(resp.StatusCode), fmt.Sprintf("%s broker %s %s: %s: %s", m.b.Name, method, path, resp.Status, strings.TrimSpace(string(respBody)))}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(respBody, out); err != nil {
		return fmt.Errorf("%s broker %s %s: decode: %w", m.b.Name, method, path, err)
	}
	return nil
}

// The management API's JSON, only the fields ferry reads.
type (
	rate struct {
		Rate float64 `json:"rate"`
	}
	mgmtQueue struct {
		Name         string `json:"name"`
		Ready        int64  `json:"messages_ready"`
		Unacked      int64  `json:"messages_unacknowledged"`
		Consumers    int    `json:"consumers"`
		MessageStats struct {
			Publish        int64 `json:"publish"`
			PublishDetails rate  `json:"publish_details"`
			Ack            int64 `json:"ack"`
			AckDetails     rate  `json:"ack_details"`
		} `json:"message_stats"`
	}
	mgmtExchange struct {
		Name         string `json:"name"`
		MessageStats struct {
			PublishIn        int64 `json:"publish_in"`
			PublishInDetails rate  `json:"publish_in_details"`
		} `json:"message_stats"`
	}
	mgmtConnection struct {
		Name             string `json:"name"`
		VHost            string `json:"vhost"`
		User             string `json:"user"`
		Channels         int    `json:"channels"`
		ClientProperties struct {
			ConnectionName string `json:"connection_name"`
		} `json:"client_properties"`
	}
	mgmtChannel struct {
		Name              string `json:"name"`
		VHost             string `json:"vhost"`
		ConnectionDetails struct {
			Name string `json:"name"`
		} `json:"connection_details"`
		Consumers    int `json:"consumer_count"`
		MessageStats struct {
			Publish int64 `json:"publish"`
		} `json:"message_stats"`
	}
)

// statusError is the management API's HTTP status, kept as the cause of the error do
// returns so callers can tell "already gone" from a failure.
type statusError int

func (e statusError) Error() string { return http.StatusText(int(e)) }

// statusMessage is an unexpected answer: its message for people, its status for callers.
type statusMessage struct {
	status statusError
	msg    string
}

func (e statusMessage) Error() string { return e.msg }
func (e statusMessage) Unwrap() error { return e.status }

// isRabbitStatus reports whether err is the management API's answer code.
func isRabbitStatus(err error, code int) bool {
	var s statusError
	return errors.As(err, &s) && int(s) == code
}

// isRabbitNotFound reports whether err is the management API's 404.
func isRabbitNotFound(err error) bool {
	var s statusError
	return errors.As(err, &s) && s == http.StatusNotFound
}
