package spec

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/workflows"
)

func TestDatabaseCutoverExample(t *testing.T) {
	m, err := ParseFile("../examples/db-cutover.yaml")
	require.NoError(t, err)
	k, in, err := Input(m, "alice", "")
	require.NoError(t, err)
	assert.Equal(t, workflows.KindDBCutover, k.Name)
	s := in.(workflows.DBCutoverInput).Spec
	assert.Equal(t, "127.0.0.3", s.DBRecordValue, "the database record gets the target's address by default")
	assert.Equal(t, "%", s.AppUserHost)
	assert.Equal(t, workflows.DBSecretRef{Env: "FERRY_DB_ADMIN_PASSWORD"}, s.AdminPassword)
	assert.Equal(t, 10*time.Second, s.CatchUpTimeout)
	assert.Equal(t, "db/db-primary.shop.internal.", k.LockID(in))
}

// TestDatabaseCutoverFieldErrors: each bad spec is refused naming its field, before
// anything connects (validation is static).
func TestDatabaseCutoverFieldErrors(t *testing.T) {
	good := `name: x
databaseCutover:
  source: 10.0.0.1:3306
  target: 10.0.0.2:3306
  adminUser: ferry
  adminPassword: {env: PW}
  appUser: app
  databaseRecord: {hostedZone: shop.internal., name: db.shop.internal.}
  maintenanceRecord: {hostedZone: shop.example., name: www.shop.example.}
  maintenanceValue: 198.51.100.99
`
	m, err := Parse([]byte(good), ".yaml")
	require.NoError(t, err)
	_, _, err = Input(m, "alice", "")
	require.NoError(t, err)
	for _, c := range []struct{ from, to, field string }{
		{"target: 10.0.0.2:3306", "target: 10.0.0.1:3306", "databaseCutover.target"},
		{"source: 10.0.0.1:3306", "source: 10.0.0.1", "databaseCutover.source"},
		{"appUser: app", "appUser: ferry", "databaseCutover.appUser"},
		{"appUser: app", "appUser: \"a b\"", "databaseCutover.appUser"},
		{"adminPassword: {env: PW}", "", "databaseCutover.adminPassword"},
		{"databaseRecord: {hostedZone: shop.internal., name: db.shop.internal.}", "", "databaseCutover.databaseRecord"},
		{"name: db.shop.internal.", "name: db.other.internal.", "databaseCutover.databaseRecord.name"},
		{"maintenanceValue: 198.51.100.99", "maintenanceValue: maint.example.", "databaseCutover.maintenanceValue"},
		{"  appUser: app", "  appUser: app\n  flavor: postgres", "databaseCutover.flavor"},
		{"  appUser: app", "  appUser: app\n  catchUpTimeout: 1h", "databaseCutover.catchUpTimeout"},
	} {
		y := strings.Replace(good, c.from, c.to, 1)
		m, err := Parse([]byte(y), ".yaml")
		require.NoError(t, err, c.field)
		_, _, err = Input(m, "alice", "")
		fe, ok := AsFieldError(err)
		require.True(t, ok, "%s: %v", c.field, err)
		assert.Equal(t, c.field, fe.Field, "%s -> %s: %v", c.from, c.to, err)
	}
}
