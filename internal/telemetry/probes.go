package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/ferryhq/ferry/workflows"
)

// Liveness answers 200 while the process serves. It does not ask Temporal: as a liveness
// probe that would restart every pod during a Temporal outage, which fixes nothing.
func Liveness(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }

// Readiness answers 200 when Ready passes, else 503 with the reason.
func Readiness(c client.Client, namespace string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := Ready(r.Context(), c, namespace); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	}
}

// Ready checks what ferry needs from Temporal before it can serve: the frontend answers,
// the namespace exists, and ferry's search attributes are registered there.
func Ready(ctx context.Context, c client.Client, namespace string) error {
	if namespace == "" {
		namespace = "default"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("temporal unreachable: %w", err)
	}
	if _, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace}); err != nil {
		return fmt.Errorf("namespace %s: %w", namespace, err)
	}
	sa, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of %s: %w", namespace, err)
	}
	var missing []string
	for _, k := range workflows.SearchAttributeKeys {
		if _, ok := sa.GetCustomAttributes()[k.GetName()]; !ok {
			missing = append(missing, k.GetName())
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("search attributes %v are not registered in namespace %s", missing, namespace)
	}
	return nil
}

// Mux serves /metrics, /healthz and /readyz: a worker's own small listener.
func Mux(m *Metrics, c client.Client, namespace string) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.HTTP())
	mux.HandleFunc("GET /healthz", Liveness)
	mux.Handle("GET /readyz", Readiness(c, namespace))
	return mux
}
