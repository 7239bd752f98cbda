package cli

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/ferryhq/ferry/internal/mariadbpair"
	"github.com/ferryhq/ferry/sandbox/dbwriter"
)

// The database cutover's playground in `ferry dev` (examples/db-cutover.yaml): when
// MariaDB is installed, a source and a target mariadbd on 127.0.0.2 / 127.0.0.3 port
// 13306 (fresh under the data directory each start), the zones shop.internal. (the
// database's name, db-primary) and pay.example. (the application, www) in the sandbox's
// Route 53, and the sandbox's writer inserting through db-primary. Without MariaDB it says
// how to get it and carries on.

const devMariaDBPort = 13306

// startDevMariaDB starts it all and returns what stops it (a no-op when nothing started).
func startDevMariaDB(ctx context.Context, log *slog.Logger, dataDir string, sb *devSandbox) func() {
	log = log.With("component", "mariadb")
	if _, _, err := mariadbpair.Find(); err != nil {
		log.Info("database cutover playground off: "+err.Error(), "example", "examples/db-cutover.yaml")
		return func() {}
	}
	dir := filepath.Join(dataDir, "mariadb")
	_ = os.RemoveAll(dir) // a fresh pair each start, as the sandbox's records are fresh
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	pair, err := mariadbpair.Start(sctx, mariadbpair.Options{Dir: dir, Port: devMariaDBPort})
	if err != nil {
		log.Warn("database cutover playground off: start mariadb", "error", err)
		return func() {}
	}
	if err := devDBRecords(sctx, sb.url, pair.Source.Host); err != nil {
		log.Warn("database cutover playground off: sandbox records", "error", err)
		pair.Stop()
		return func() {}
	}
	// The example's secret references, for the in-process worker: sandbox credentials.
	for k, v := range map[string]string{"FERRY_DB_ADMIN_PASSWORD": mariadbpair.AdminPassword, "FERRY_DB_REPL_PASSWORD": mariadbpair.ReplPassword} {
		if os.Getenv(k) == "" {
			_ = os.Setenv(k, v)
		}
	}
	w := dbwriter.New(dbwriter.Options{Resolver: sb.sb.AWS(), Record: "db-primary.shop.internal.", Port: devMariaDBPort,
		User: mariadbpair.AppUser, Password: mariadbpair.AppPassword, Schema: mariadbpair.AppSchema, Interval: 100 * time.Millisecond})
	wctx, stopW := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); w.Run(wctx) }()
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
				s := w.Stats()
				log.Info("writer through db-primary.shop.internal.", "acknowledged", s.Acked, "failed", s.Failed, "by server", s.AckedBy)
			}
		}
	}()
	log.Info("database cutover playground up", "source", pair.Source.Addr(), "target", pair.Target.Addr(),
		"record", "db-primary.shop.internal.", "try", "ferry start -f examples/db-cutover.yaml --watch")
	return func() {
		stopW()
		<-done
		pair.Stop()
	}
}

// devDBRecords creates the playground's zones through the sandbox's Route 53 API.
func devDBRecords(ctx context.Context, endpoint, sourceHost string) error {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("sandbox", "sandbox", "")))
	if err != nil {
		return err
	}
	c := route53.NewFromConfig(cfg, func(o *route53.Options) { o.BaseEndpoint = aws.String(endpoint) })
	for _, z := range []struct{ zone, record, value string }{
		{"shop.internal.", "db-primary.shop.internal.", sourceHost},
		{"pay.example.", "www.pay.example.", "198.51.100.30"},
	} {
		out, err := c.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: aws.String(z.zone), CallerReference: aws.String("ferry-dev-" + z.zone)})
		if err != nil {
			return err
		}
		if _, err := c.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: out.HostedZone.Id,
			ChangeBatch: &r53types.ChangeBatch{Changes: []r53types.Change{{Action: r53types.ChangeActionCreate, ResourceRecordSet: &r53types.ResourceRecordSet{
				Name: aws.String(z.record), Type: r53types.RRTypeA, TTL: aws.Int64(5), ResourceRecords: []r53types.ResourceRecord{{Value: aws.String(z.value)}},
			}}}}}); err != nil {
			return err
		}
	}
	return nil
}
