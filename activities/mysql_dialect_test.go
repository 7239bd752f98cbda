package activities

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// MariaDB GTIDs are per-domain positions: errant and caught up are defined per domain.
func TestMariaDBErrantPerDomain(t *testing.T) {
	d := mariadb{}
	for _, c := range []struct {
		name, source, target string
		errant               int
	}{
		{"caught up", "0-1-100", "0-1-100", 0},
		{"behind", "0-1-100", "0-1-90", 0},
		{"behind in one domain of two", "0-1-100,1-1-7", "0-1-100,1-1-5", 0},
		{"a domain the source never wrote", "0-1-100", "0-1-100,5-2-3", 1},
		{"beyond the source in its domain", "0-1-100", "0-2-101", 1},
		{"same sequence, another server", "0-1-100", "0-2-100", 1},
		{"empty target", "0-1-100", "", 0},
	} {
		assert.Len(t, d.errant(c.source, c.target), c.errant, c.name)
	}
}

func TestMariaDBPositions(t *testing.T) {
	assert.Equal(t, "0-1-100,1-3-9", mergeMariaPos("0-1-90,1-3-9", "0-1-100"))
	assert.Equal(t, "0-2-5", mergeMariaPos("", "0-2-5"))
	assert.Equal(t, `'a\'b\\c'`, quote(`a'b\c`))
	assert.Equal(t, "'app'@'%'", account("app", "%"))
}
