package activities

import (
	"fmt"
	"testing"
	"time"
)

// The client cache stays bounded however many hosts specs name: at most maxMongoClients,
// least recently used out first, and clients idle for mongoClientIdle closed. (The driver
// connects lazily, so no server is needed.)
func TestMongoClientCacheIsBounded(t *testing.T) {
	m := NewMongo(nil)
	defer m.Close()
	conn := MongoConn{URI: "mongodb://127.0.0.1:1/?replicaSet=rs0"}
	for i := range maxMongoClients + 10 {
		if _, err := m.client(conn, fmt.Sprintf("127.0.0.1:%d", 20000+i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(m.clients); n > maxMongoClients {
		t.Fatalf("%d clients cached, want at most %d", n, maxMongoClients)
	}
	for _, c := range m.clients {
		c.used = time.Now().Add(-2 * mongoClientIdle)
	}
	if _, err := m.client(conn, ""); err != nil {
		t.Fatal(err)
	}
	if n := len(m.clients); n != 1 {
		t.Fatalf("%d clients cached after all went idle, want 1 (the new one)", n)
	}
}
