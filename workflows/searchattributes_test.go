package workflows

import (
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
)

// TestSearchAttributesFitSQLVisibility keeps ferry's schema within what Temporal's SQL
// visibility (SQLite, PostgreSQL, MySQL; server 1.29) allows per namespace, so `ferry setup`
// can register it on any cluster: 10 Keyword, 3 KeywordList, 3 Bool, and 3 of each other type.
func TestSearchAttributesFitSQLVisibility(t *testing.T) {
	limit := map[enumspb.IndexedValueType]int{
		enumspb.INDEXED_VALUE_TYPE_KEYWORD:      10,
		enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST: 3,
		enumspb.INDEXED_VALUE_TYPE_BOOL:         3,
		enumspb.INDEXED_VALUE_TYPE_INT:          3,
		enumspb.INDEXED_VALUE_TYPE_DOUBLE:       3,
		enumspb.INDEXED_VALUE_TYPE_DATETIME:     3,
		enumspb.INDEXED_VALUE_TYPE_TEXT:         3,
	}
	used := map[enumspb.IndexedValueType]int{}
	names := map[string]bool{}
	for _, k := range SearchAttributeKeys {
		if names[k.GetName()] {
			t.Errorf("%s declared twice", k.GetName())
		}
		names[k.GetName()] = true
		used[k.GetValueType()]++
	}
	for typ, n := range used {
		if n > limit[typ] {
			t.Errorf("%d %s attributes; SQL visibility allows %d per namespace", n, typ, limit[typ])
		}
	}
	if SATargetRegions.GetValueType() != enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST {
		t.Error("target regions must be a KeywordList so a filter matches one element")
	}
}
