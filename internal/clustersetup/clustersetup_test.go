package clustersetup_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/temporalio/cli/temporalcli/devserver"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ferryhq/ferry/internal/clustersetup"
	"github.com/ferryhq/ferry/internal/devtemporal"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/workflows"
)

// quickCache makes attributes added after start visible at once (what `temporal server
// start-dev` does), so these tests do not wait for the namespace cache.
var quickCache = map[string]any{"system.forceSearchAttributesCacheRefreshOnRead": true}

// TestSetupCreatesThenChangesNothing: on a namespace that does not exist, setup creates it
// and registers every attribute with its type (judged by the server's own listing); a
// second run changes nothing.
func TestSetupCreatesThenChangesNothing(t *testing.T) {
	_, c, stop := testenv.StartTemporal(t, devtemporal.Options{DynamicConfig: quickCache})
	defer stop()
	ctx := context.Background()
	o := clustersetup.Options{Namespace: "ferry-setup", Retention: 48 * time.Hour}
	first, err := clustersetup.Run(ctx, c, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Changes) != 1+len(workflows.SearchAttributeKeys) {
		t.Fatalf("first run changed %v; want the namespace and %d attributes", first.Changes, len(workflows.SearchAttributeKeys))
	}
	if !strings.HasPrefix(first.ServerVersion, "1.") {
		t.Errorf("server version %q", first.ServerVersion)
	}
	ns, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "ferry-setup"})
	if err != nil {
		t.Fatal(err)
	}
	if got := ns.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration(); got != 48*time.Hour {
		t.Errorf("retention %s, want 48h", got)
	}
	sa, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "ferry-setup"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range workflows.SearchAttributeKeys {
		if got := sa.GetCustomAttributes()[k.GetName()]; got != k.GetValueType() {
			t.Errorf("%s registered as %s, want %s", k.GetName(), got, k.GetValueType())
		}
	}
	if sa.GetCustomAttributes()["FerryTargetRegions"] != enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST {
		t.Error("FerryTargetRegions is not a KeywordList")
	}
	second, err := clustersetup.Run(ctx, c, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Changes) != 0 {
		t.Fatalf("second run changed %v", second.Changes)
	}
	if last := second.Lines[len(second.Lines)-1]; !strings.Contains(last, "nothing to change") {
		t.Errorf("second run's last line %q", last)
	}
}

// TestSetupRefusesAWrongType: an attribute registered by someone else under ferry's name
// with another type is an error naming the attribute and the fix, and setup adds nothing.
func TestSetupRefusesAWrongType(t *testing.T) {
	_, c, stop := testenv.StartTemporal(t, devtemporal.Options{DynamicConfig: quickCache})
	defer stop()
	ctx := context.Background()
	if _, err := c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace: "other", WorkflowExecutionRetentionPeriod: durationOf(24 * time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "namespace other", func() bool {
		_, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
			Namespace: "other", SearchAttributes: map[string]enumspb.IndexedValueType{"FerryTargetRegions": enumspb.INDEXED_VALUE_TYPE_KEYWORD},
		})
		return err == nil
	})
	_, err := clustersetup.Run(ctx, c, clustersetup.Options{Namespace: "other"})
	if err == nil || !strings.Contains(err.Error(), "FerryTargetRegions is registered as Keyword in namespace other but ferry needs KeywordList") || !strings.Contains(err.Error(), "search-attribute remove") {
		t.Fatalf("err = %v, want the wrong type named with the fix", err)
	}
	sa, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sa.GetCustomAttributes()["FerryKind"]; ok {
		t.Error("setup registered attributes although it refused the namespace")
	}
}

// TestOlderDataDirectoryGainsNewAttributes: a `ferry dev` data directory written before
// FerryTargetRegions existed (its namespace holds the older attributes only) gains it when
// the embedded server starts on it, through the same setup code, with ferry dev's settings
// (no forced cache refresh).
func TestOlderDataDirectoryGainsNewAttributes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded server twice on a file")
	}
	db := filepath.Join(t.TempDir(), "temporal.db")
	old := map[string]enumspb.IndexedValueType{}
	for _, k := range workflows.SearchAttributeKeys {
		if k.GetName() != workflows.SATargetRegions.GetName() {
			old[k.GetName()] = k.GetValueType()
		}
	}
	port := devserver.MustGetFreePort("127.0.0.1")
	srv, err := devserver.Start(devserver.StartOptions{
		FrontendIP: "127.0.0.1", FrontendPort: port, Namespaces: []string{"default"},
		ClusterID: "older", MasterClusterName: "active", CurrentClusterName: "active", InitialFailoverVersion: 1,
		Logger: discard(), DatabaseFile: db, SearchAttributes: old, UIPort: 0,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	start := time.Now()
	s, err := devtemporal.Start(devtemporal.Options{DBFile: db, UIPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	t.Logf("start with the migration took %s", time.Since(start).Round(time.Millisecond))
	if got := s.SetupChanges(); len(got) != 1 || !strings.Contains(got[0], "FerryTargetRegions") {
		t.Fatalf("setup changes %v, want FerryTargetRegions registered", got)
	}
	c, err := client.Dial(client.Options{HostPort: s.HostPort(), Logger: testenv.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The list filter `ferry list --region` sends must be accepted.
	q := "FerryTargetRegions = 'eu-west-2' OR FerryTargetRegion = 'eu-west-2'"
	_, err = c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: q})
	if err != nil {
		t.Fatalf("list by region right after the migration: %v", err)
	}
}

func durationOf(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
