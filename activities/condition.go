package activities

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Condition is a metric gate's test of a value: healthy when value Op Value holds.
type Condition struct {
	Op    string // < <= > >= == !=
	Value float64
}

// conditionOps are tried longest first, so "<=" is not read as "<" and "=0.1".
var conditionOps = []string{"<=", ">=", "==", "!=", "<", ">"}

// ParseCondition reads a comparison such as "< 0.01" or ">=100".
func ParseCondition(s string) (Condition, error) {
	s = strings.TrimSpace(s)
	for _, op := range conditionOps {
		rest, ok := strings.CutPrefix(s, op)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return Condition{}, fmt.Errorf("%q: %q is not a number", s, strings.TrimSpace(rest))
		}
		return Condition{Op: op, Value: v}, nil
	}
	return Condition{}, fmt.Errorf("%q is not a comparison: write an operator (< <= > >= == !=) and a number, e.g. \"< 0.01\"", s)
}

// Met reports whether v meets the condition. NaN meets none: callers treat it as no
// value, before asking.
func (c Condition) Met(v float64) bool {
	switch c.Op {
	case "<":
		return v < c.Value
	case "<=":
		return v <= c.Value
	case ">":
		return v > c.Value
	case ">=":
		return v >= c.Value
	case "==":
		return v == c.Value
	case "!=":
		return v != c.Value
	}
	return false
}

func (c Condition) String() string {
	return c.Op + " " + strconv.FormatFloat(c.Value, 'g', -1, 64)
}
