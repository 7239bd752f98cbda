package spec

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/workflows"
)

// Defaults of a database cutover spec (see dbcutover.proto).
const (
	DefaultDBMaxLag         = 5 * time.Second
	DefaultDBMaxTxnAge      = 30 * time.Second
	DefaultDBCatchUpTimeout = 10 * time.Second
	DefaultDBCanarySchema   = "ferry"
)

// dbUserName is what a MySQL / MariaDB account name may be here: no quotes, backslashes or
// spaces, so it can be quoted into ALTER USER and SHOW GRANTS safely.
var dbUserName = regexp.MustCompile(`^[A-Za-z0-9_.$-]{1,80}$`)

// dbUserHost is an account's host part: a name, an address or a pattern with % and _.
var dbUserHost = regexp.MustCompile(`^[A-Za-z0-9_.%:/-]{1,255}$`)

// DatabaseCutover validates a database cutover spec statically (no server or cloud
// contact: a bad spec is refused before anything connects) and applies defaults. The
// first problem is returned as a *FieldError.
func DatabaseCutover(s *ferryv1.DatabaseCutoverSpec) (workflows.DBCutoverSpec, error) {
	const p = "databaseCutover"
	out := workflows.DBCutoverSpec{}
	if s == nil {
		return out, fieldErr(p, "missing")
	}
	var err error
	if out.Source, err = hostPort(p+".source", s.GetSource()); err != nil {
		return out, err
	}
	if out.Target, err = hostPort(p+".target", s.GetTarget()); err != nil {
		return out, err
	}
	if strings.EqualFold(out.Source, out.Target) {
		return out, fieldErr(p+".target", "%s is also the source; the target is the replica to promote, another server", out.Target)
	}
	switch f := strings.ToLower(strings.TrimSpace(s.GetFlavor())); f {
	case "", "mariadb":
		out.Flavor = "mariadb"
	case "mysql":
		out.Flavor = "mysql"
	default:
		return out, fieldErr(p+".flavor", "%q: use mariadb (10.11) or mysql (8)", s.GetFlavor())
	}
	if out.AdminUser, err = dbUser(p+".adminUser", s.GetAdminUser()); err != nil {
		return out, err
	}
	if out.AdminPassword, err = dbSecret(p+".adminPassword", s.GetAdminPassword(), true); err != nil {
		return out, err
	}
	if out.AppUser, err = dbUser(p+".appUser", s.GetAppUser()); err != nil {
		return out, err
	}
	if out.AppUser == out.AdminUser {
		return out, fieldErr(p+".appUser", "%q is also adminUser; the application's user is locked during the freeze, ferry's must not be", out.AppUser)
	}
	out.AppUserHost = strings.TrimSpace(s.GetAppUserHost())
	if out.AppUserHost == "" {
		out.AppUserHost = "%"
	}
	if !dbUserHost.MatchString(out.AppUserHost) {
		return out, fieldErr(p+".appUserHost", "%q is not an account host (e.g. %% or 10.0.%%)", out.AppUserHost)
	}
	out.ReplUser, out.ReplPassword = out.AdminUser, out.AdminPassword
	if strings.TrimSpace(s.GetReplicationUser()) != "" {
		if out.ReplUser, err = dbUser(p+".replicationUser", s.GetReplicationUser()); err != nil {
			return out, err
		}
		if out.ReplPassword, err = dbSecret(p+".replicationPassword", s.GetReplicationPassword(), true); err != nil {
			return out, err
		}
	} else if s.GetReplicationPassword() != nil {
		return out, fieldErr(p+".replicationUser", "required when replicationPassword is set")
	}

	if out.DBRecord, err = dbRecord(p+".databaseRecord", s.GetDatabaseRecord(), true); err != nil {
		return out, err
	}
	out.DBRecordValue = strings.TrimSpace(s.GetDatabaseRecordTargetValue())
	if out.DBRecordValue == "" {
		out.DBRecordValue, _, _ = net.SplitHostPort(out.Target)
	}
	if out.DBRecord.Type == "A" && net.ParseIP(out.DBRecordValue) == nil {
		return out, fieldErr(p+".databaseRecordTargetValue", "%q is not an IP address, which an A record needs; set the target's address (or use a CNAME record)", out.DBRecordValue)
	}
	if mr := s.GetMaintenanceRecord(); mr != nil {
		m, err := dbRecord(p+".maintenanceRecord", mr, false)
		if err != nil {
			return out, err
		}
		out.Maintenance = &m
		out.MaintenanceValue = strings.TrimSpace(s.GetMaintenanceValue())
		if out.MaintenanceValue == "" {
			return out, fieldErr(p+".maintenanceValue", "required with maintenanceRecord: the maintenance endpoint's address")
		}
		if m.Type == "A" && net.ParseIP(out.MaintenanceValue) == nil {
			return out, fieldErr(p+".maintenanceValue", "%q is not an IP address, which an A record needs", out.MaintenanceValue)
		}
		if strings.EqualFold(m.Name, out.DBRecord.Name) {
			return out, fieldErr(p+".maintenanceRecord.name", "is the database record; the maintenance page goes on the application's record")
		}
	} else if s.GetMaintenanceValue() != "" {
		return out, fieldErr(p+".maintenanceRecord", "required with maintenanceValue: the application's record to point at it")
	}

	if out.MaxLag, err = duration(p+".maxLag", s.GetMaxLag(), DefaultDBMaxLag, 0, time.Hour); err != nil {
		return out, err
	}
	if out.MaxTxnAge, err = duration(p+".maxTransactionAge", s.GetMaxTransactionAge(), DefaultDBMaxTxnAge, time.Second, 24*time.Hour); err != nil {
		return out, err
	}
	// The catch-up happens while writes are frozen: minutes would be an outage, not a
	// cutover.
	if out.CatchUpTimeout, err = duration(p+".catchUpTimeout", s.GetCatchUpTimeout(), DefaultDBCatchUpTimeout, 100*time.Millisecond, 5*time.Minute); err != nil {
		return out, err
	}
	out.RequireApproval = s.GetRequireApproval()
	out.CanarySchema = strings.TrimSpace(s.GetCanarySchema())
	if out.CanarySchema == "" {
		out.CanarySchema = DefaultDBCanarySchema
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`).MatchString(out.CanarySchema) {
		return out, fieldErr(p+".canarySchema", "%q is not a plain schema name (letters, digits, _)", out.CanarySchema)
	}
	out.FreezeSettle = 100 * time.Millisecond
	return out, nil
}

func hostPort(field, v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", fieldErr(field, "required: host:port of the server, e.g. 10.0.1.5:3306")
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" {
		return "", fieldErr(field, "%q is not host:port, e.g. 10.0.1.5:3306", v)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fieldErr(field, "port %q is not 1..65535", port)
	}
	return strings.ToLower(v), nil
}

func dbUser(field, v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", fieldErr(field, "required: a database user name")
	}
	if !dbUserName.MatchString(v) {
		return "", fieldErr(field, "%q is not a user name ferry accepts (letters, digits, _ . $ -; at most 80)", v)
	}
	return v, nil
}

func dbSecret(field string, r *ferryv1.DatabaseSecretRef, required bool) (workflows.DBSecretRef, error) {
	switch {
	case r.GetEnv() != "":
		return workflows.DBSecretRef{Env: r.GetEnv()}, nil
	case r.GetFile() != "":
		return workflows.DBSecretRef{File: r.GetFile()}, nil
	case required:
		return workflows.DBSecretRef{}, fieldErr(field, "required: env (a variable on the worker) or file (a path on the worker); never the password itself")
	}
	return workflows.DBSecretRef{}, nil
}

func dbRecord(field string, r *ferryv1.DnsRecordRef, required bool) (workflows.DBRecordRef, error) {
	if r == nil {
		return workflows.DBRecordRef{}, fieldErr(field, "required: hostedZone and name of the record")
	}
	out := workflows.DBRecordRef{Zone: strings.TrimSpace(r.GetHostedZone()), Name: strings.ToLower(strings.TrimSpace(r.GetName())), Type: strings.ToUpper(strings.TrimSpace(r.GetType()))}
	if out.Zone == "" {
		return out, fieldErr(field+".hostedZone", "required: the zone's name (e.g. shop.internal.) or id")
	}
	if out.Name == "" {
		return out, fieldErr(field+".name", "required: the record's name, e.g. db-primary.shop.internal.")
	}
	if !strings.HasSuffix(out.Name, ".") {
		out.Name += "."
	}
	if zn := strings.ToLower(out.Zone); !strings.HasPrefix(zn, "z") || strings.Contains(zn, ".") {
		if !strings.HasSuffix(zn, ".") {
			zn += "."
		}
		if out.Name != zn && !strings.HasSuffix(out.Name, "."+zn) {
			return out, fieldErr(field+".name", "%s is not in zone %s", out.Name, zn)
		}
	}
	switch out.Type {
	case "":
		out.Type = "A"
	case "A", "CNAME":
	default:
		return out, fieldErr(field+".type", "%q: use A or CNAME", out.Type)
	}
	return out, nil
}
