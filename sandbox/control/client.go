package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to a sandbox's control API, e.g. for `ferry sandbox fault add`.
type Client struct {
	BaseURL    string // e.g. http://127.0.0.1:4566
	HTTPClient *http.Client
}

// APIError is a non-2xx answer of the control API.
type APIError struct {
	Status  int
	Field   string
	Message string
}

func (e *APIError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("sandbox: %s: %s (HTTP %d)", e.Field, e.Message, e.Status)
	}
	return fmt.Sprintf("sandbox: %s (HTTP %d)", e.Message, e.Status)
}

// AddFault injects a fault and returns it with its id.
func (c *Client) AddFault(ctx context.Context, f Fault) (Fault, error) {
	var out Fault
	err := c.do(ctx, http.MethodPost, "/_sandbox/faults", f, &out)
	return out, err
}

// ListFaults returns the active faults.
func (c *Client) ListFaults(ctx context.Context) ([]Fault, error) {
	var out []Fault
	err := c.do(ctx, http.MethodGet, "/_sandbox/faults", nil, &out)
	return out, err
}

// ClearFaults removes every fault.
func (c *Client) ClearFaults(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/_sandbox/faults", nil, nil)
}

// ListFaultsOf returns the active faults owner injected.
func (c *Client) ListFaultsOf(ctx context.Context, owner string) ([]Fault, error) {
	var out []Fault
	err := c.do(ctx, http.MethodGet, "/_sandbox/faults?owner="+url.QueryEscape(owner), nil, &out)
	return out, err
}

// ClearFaultsOf removes the faults owner injected, and no other.
func (c *Client) ClearFaultsOf(ctx context.Context, owner string) error {
	return c.do(ctx, http.MethodDelete, "/_sandbox/faults?owner="+url.QueryEscape(owner), nil, nil)
}

// DeleteFault removes one fault.
func (c *Client) DeleteFault(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/_sandbox/faults/"+url.PathEscape(id), nil, nil)
}

// Calls returns the recorded mutating AWS calls matching f.
func (c *Client) Calls(ctx context.Context, f CallFilter) ([]Call, error) {
	q := url.Values{}
	if f.Service != "" {
		q.Set("service", f.Service)
	}
	if f.Operation != "" {
		q.Set("operation", f.Operation)
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.Format(time.RFC3339Nano))
	}
	p := "/_sandbox/calls"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	var out []Call
	err := c.do(ctx, http.MethodGet, p, nil, &out)
	return out, err
}

// Traffic returns the client population's per-region view.
func (c *Client) Traffic(ctx context.Context) (Traffic, error) {
	var out Traffic
	err := c.do(ctx, http.MethodGet, "/_sandbox/traffic", nil, &out)
	return out, err
}

// Series returns the clients' per-second counts of every region for [from, to).
func (c *Client) Series(ctx context.Context, from, to time.Time) (TrafficSeries, error) {
	var out TrafficSeries
	q := url.Values{"from": {from.UTC().Format(time.RFC3339Nano)}, "to": {to.UTC().Format(time.RFC3339Nano)}}
	err := c.do(ctx, http.MethodGet, "/_sandbox/traffic/series?"+q.Encode(), nil, &out)
	return out, err
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	if c.BaseURL == "" {
		return fmt.Errorf("sandbox: no base URL")
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("sandbox: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, body)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("sandbox: %s %s: %w (is the sandbox running?)", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("sandbox: read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var fe FieldError
		if json.Unmarshal(data, &fe) == nil && fe.Message != "" {
			return &APIError{Status: resp.StatusCode, Field: fe.Field, Message: fe.Message}
		}
		return &APIError{Status: resp.StatusCode, Message: strings.TrimSpace(string(data))}
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("sandbox: decode answer of %s: %w", path, err)
	}
	return nil
}
