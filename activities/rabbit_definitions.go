package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
)

// RabbitDefinitionsInput compares the vhost's definitions on the two brokers.
type RabbitDefinitionsInput struct {
	Old, New RabbitBroker
	// Queues are the spec's queues: each must be on the old broker.
	Queues []string
	// Import posts the old broker's definitions to the new one when it lacks some.
	Import bool
}

// RabbitDefinitionsResult is the difference the plan shows.
type RabbitDefinitionsResult struct {
	// MissingOnOld are spec queues the old broker does not have ("queue orders").
	MissingOnOld []string
	// MissingOnNew are the old broker's exchanges, queues, bindings and policies the new
	// one lacks, as "exchange shop", "queue orders", "binding shop -> queue orders (key
	// new)", "policy ttl"; after an import, what was missing before it.
	MissingOnNew []string
	Imported     bool
}

// The definitions JSON of one vhost (GET /api/definitions/{vhost}), only what is compared;
// the import posts the old broker's document as it was read, untouched.
type vhostDefinitions struct {
	Queues []struct {
		Name string `json:"name"`
	} `json:"queues"`
	Exchanges []struct {
		Name string `json:"name"`
	} `json:"exchanges"`
	Bindings []struct {
		Source          string `json:"source"`
		Destination     string `json:"destination"`
		DestinationType string `json:"destination_type"`
		RoutingKey      string `json:"routing_key"`
	} `json:"bindings"`
	Policies []struct {
		Name string `json:"name"`
	} `json:"policies"`
}

func (d vhostDefinitions) items() []string {
	var out []string
	for _, e := range d.Exchanges {
		out = append(out, "exchange "+e.Name)
	}
	for _, q := range d.Queues {
		out = append(out, "queue "+q.Name)
	}
	for _, b := range d.Bindings {
		out = append(out, fmt.Sprintf("binding %s -> %s %s (key %s)", b.Source, b.DestinationType, b.Destination, b.RoutingKey))
	}
	for _, p := range d.Policies {
		out = append(out, "policy "+p.Name)
	}
	return out
}

// relevant keeps what concerns queues: those queues, the bindings into them, the
// exchanges those bindings come from (not the default exchange, which every broker has),
// and every policy (a policy applies by pattern, so any may apply to them). Other queues of
// a shared vhost are not the move's business. Exchange-to-exchange bindings are not
// followed.
func (d vhostDefinitions) relevant(queues []string) vhostDefinitions {
	var out vhostDefinitions
	exchanges := map[string]bool{}
	for _, b := range d.Bindings {
		if b.DestinationType == "queue" && slices.Contains(queues, b.Destination) {
			out.Bindings = append(out.Bindings, b)
			if b.Source != "" {
				exchanges[b.Source] = true
			}
		}
	}
	for _, q := range d.Queues {
		if slices.Contains(queues, q.Name) {
			out.Queues = append(out.Queues, q)
		}
	}
	for _, e := range d.Exchanges {
		if exchanges[e.Name] {
			out.Exchanges = append(out.Exchanges, e)
		}
	}
	out.Policies = d.Policies
	return out
}

// filterDefinitions is raw (the old broker's document) with only the items keep holds,
// every other field of each item as it was read, for the import.
func filterDefinitions(raw json.RawMessage, keep vhostDefinitions) (json.RawMessage, error) {
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	items := map[string]bool{}
	for _, it := range keep.items() {
		items[it] = true
	}
	out := map[string]any{}
	for _, k := range []string{"rabbit_version", "rabbitmq_version"} {
		if v, ok := doc[k]; ok {
			out[k] = v
		}
	}
	for _, kind := range []string{"queues", "exchanges", "bindings", "policies"} {
		list, _ := doc[kind].([]any)
		kept := []any{}
		for _, x := range list {
			m, _ := x.(map[string]any)
			name, _ := m["name"].(string)
			var it string
			switch kind {
			case "queues":
				it = "queue " + name
			case "exchanges":
				it = "exchange " + name
			case "policies":
				it = "policy " + name
			case "bindings":
				it = fmt.Sprintf("binding %v -> %v %v (key %v)", m["source"], m["destination_type"], m["destination"], m["routing_key"])
			}
			if items[it] {
				kept = append(kept, x)
			}
		}
		out[kind] = kept
	}
	return json.Marshal(out)
}

// RabbitDefinitions is the preflight's definitions check (read-only unless Import): the
// spec's queues on the old broker, and on the new one what the old broker defines for them
// (the queues, the bindings into them, their exchanges, the policies); with Import, those
// definitions posted to the new broker (RabbitMQ's import only adds; a queue that exists
// with other arguments is refused, and reported).
func (a *Rabbit) RabbitDefinitions(ctx context.Context, in RabbitDefinitionsInput) (RabbitDefinitionsResult, error) {
	var res RabbitDefinitionsResult
	oldM, err := a.mgmt(in.Old)
	if err != nil {
		return res, err
	}
	newM, err := a.mgmt(in.New)
	if err != nil {
		return res, err
	}
	// One read of the old broker: what is compared is what would be imported.
	var raw json.RawMessage
	if err := oldM.do(ctx, "GET", "/api/definitions/"+oldM.vhostPath(), nil, &raw); err != nil {
		return res, err
	}
	var oldDefs, newDefs vhostDefinitions
	if err := json.Unmarshal(raw, &oldDefs); err != nil {
		return res, fmt.Errorf("old broker's definitions: %w", err)
	}
	if err := newM.do(ctx, "GET", "/api/definitions/"+newM.vhostPath(), nil, &newDefs); err != nil {
		return res, err
	}
	mine := oldDefs.relevant(in.Queues)
	oldItems, newItems := mine.items(), newDefs.items()
	for _, q := range in.Queues {
		if !slices.Contains(oldItems, "queue "+q) {
			res.MissingOnOld = append(res.MissingOnOld, "queue "+q)
		}
	}
	for _, it := range oldItems {
		if !slices.Contains(newItems, it) {
			res.MissingOnNew = append(res.MissingOnNew, it)
		}
	}
	if in.Import && len(res.MissingOnNew) > 0 && len(res.MissingOnOld) == 0 {
		body, err := filterDefinitions(raw, mine)
		if err != nil {
			return res, fmt.Errorf("old broker's definitions: %w", err)
		}
		if err := newM.doBody(ctx, "POST", "/api/definitions/"+newM.vhostPath(), nil, body, nil); err != nil {
			return res, fmt.Errorf("import the old broker's definitions into the new: %w", err)
		}
		res.Imported = true
	}
	return res, nil
}
