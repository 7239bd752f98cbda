package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Prefix is where the control API lives on the sandbox port; AWS never uses this path.
const Prefix = "/_sandbox/"

// Sources are what the control API reads; nil ones answer 404.
type Sources struct {
	Faults      *Registry
	Calls       func(CallFilter) []Call
	Traffic     func() Traffic
	Series      func(from, to time.Time) TrafficSeries
	Topology    func() any
	MongoEvents func() any
	Logger      *slog.Logger
}

// NewHandler returns the control API, to be mounted at Prefix.
func NewHandler(src Sources) http.Handler {
	log := src.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_sandbox/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /_sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		if !need(w, src.Faults != nil, "faults") {
			return
		}
		// ?owner=X lists only X's faults (a GameDay's); without it, every fault.
		if q := r.URL.Query(); q.Has("owner") {
			writeJSON(w, http.StatusOK, nonNil(src.Faults.ListOwner(q.Get("owner"))))
			return
		}
		writeJSON(w, http.StatusOK, src.Faults.List())
	})
	mux.HandleFunc("POST /_sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		if !need(w, src.Faults != nil, "faults") {
			return
		}
		var f Fault
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			writeJSON(w, http.StatusBadRequest, &FieldError{"body", fmt.Sprintf("not a fault: %v", err)})
			return
		}
		added, err := src.Faults.Add(f)
		var fe *FieldError
		switch {
		case errors.As(err, &fe):
			writeJSON(w, http.StatusBadRequest, fe)
			return
		case err != nil:
			writeJSON(w, http.StatusInternalServerError, &FieldError{"", err.Error()})
			return
		}
		log.Info("fault added", "id", added.ID, "target", added.Target, "kind", added.Kind, "rate", added.Rate,
			"after", added.After, "count", added.Count, "command", added.Command, "code", added.Code, "owner", added.Owner)
		writeJSON(w, http.StatusCreated, added)
	})
	mux.HandleFunc("DELETE /_sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		if !need(w, src.Faults != nil, "faults") {
			return
		}
		// ?owner=X clears X's faults and leaves everyone else's.
		if q := r.URL.Query(); q.Has("owner") {
			n, err := src.Faults.ClearOwner(q.Get("owner"))
			if err != nil {
				writeJSON(w, http.StatusInternalServerError, &FieldError{"", err.Error()})
				return
			}
			log.Info("faults cleared", "owner", q.Get("owner"), "count", n)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if err := src.Faults.Clear(); err != nil {
			writeJSON(w, http.StatusInternalServerError, &FieldError{"", err.Error()})
			return
		}
		log.Info("faults cleared")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /_sandbox/faults/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !need(w, src.Faults != nil, "faults") {
			return
		}
		id := r.PathValue("id")
		ok, err := src.Faults.Delete(id)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, &FieldError{"id", err.Error()})
			return
		}
		if !ok {
			writeJSON(w, http.StatusNotFound, &FieldError{"id", fmt.Sprintf("no fault %q", id)})
			return
		}
		log.Info("fault deleted", "id", id)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sandbox/calls", func(w http.ResponseWriter, r *http.Request) {
		if !need(w, src.Calls != nil, "calls") {
			return
		}
		q := r.URL.Query()
		f := CallFilter{Service: q.Get("service"), Operation: q.Get("operation")}
		if s := q.Get("since"); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, &FieldError{"since", "must be an RFC 3339 time"})
				return
			}
			f.Since = t
		}
		calls := src.Calls(f)
		if calls == nil {
			calls = []Call{}
		}
		writeJSON(w, http.StatusOK, calls)
	})
	mux.HandleFunc("GET /_sandbox/traffic", func(w http.ResponseWriter, r *http.Request) {
		if !need(w, src.Traffic != nil, "traffic") {
			return
		}
		writeJSON(w, http.StatusOK, src.Traffic())
	})
	mux.HandleFunc("GET /_sandbox/traffic/series", func(w http.ResponseWriter, r *http.Request) {
		if !need(w, src.Series != nil, "traffic series") {
			return
		}
		q := r.URL.Query()
		var at [2]time.Time
		for i, name := range []string{"from", "to"} {
			t, err := time.Parse(time.RFC3339Nano, q.Get(name))
			if err != nil {
				writeJSON(w, http.StatusBadRequest, &FieldError{name, "must be an RFC 3339 time, e.g. " + time.Now().UTC().Format(time.RFC3339)})
				return
			}
			at[i] = t
		}
		if !at[1].After(at[0]) || at[1].Sub(at[0]) > MaxSeriesSec*time.Second {
			writeJSON(w, http.StatusBadRequest, &FieldError{"to", fmt.Sprintf("must be after from and at most %d minutes later", MaxSeriesSec/60)})
			return
		}
		writeJSON(w, http.StatusOK, src.Series(at[0], at[1]))
	})
	mux.HandleFunc("GET /_sandbox/topology", func(w http.ResponseWriter, r *http.Request) {
		if !need(w, src.Topology != nil, "topology") {
			return
		}
		writeJSON(w, http.StatusOK, src.Topology())
	})
	mux.HandleFunc("GET /_sandbox/mongo/events", func(w http.ResponseWriter, r *http.Request) {
		if !need(w, src.MongoEvents != nil, "mongo events") {
			return
		}
		writeJSON(w, http.StatusOK, src.MongoEvents())
	})
	mux.HandleFunc("/_sandbox/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, &FieldError{"path", fmt.Sprintf("no control endpoint %s %s", r.Method, r.URL.Path)})
	})
	return mux
}

func need(w http.ResponseWriter, ok bool, what string) bool {
	if !ok {
		writeJSON(w, http.StatusNotFound, &FieldError{"path", what + " are not available in this sandbox"})
	}
	return ok
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil(fs []Fault) []Fault {
	if fs == nil {
		return []Fault{}
	}
	return fs
}
