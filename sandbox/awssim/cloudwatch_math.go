package awssim

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// A small part of CloudWatch metric math: + - * /, parentheses, numbers and the ids of
// other queries. Enough for the ratios gates are written with (errors / requests); a
// function call is refused with a message saying what the sandbox evaluates.

// mathValue is a series or, with isScalar, a number.
type mathValue struct {
	ser      series
	scalar   float64
	isScalar bool
}

type mathParser struct {
	toks []string
	pos  int
	ids  map[string]series
	err  *apiError
}

func mathErr(format string, args ...any) *apiError {
	e := badParam("metric math: "+format, args...)
	e.status, e.code = http.StatusBadRequest, "ValidationError"
	return e
}

func evalMetricMath(expr string, ids map[string]series) (series, *apiError) {
	toks, e := mathTokens(expr)
	if e != nil {
		return series{}, e
	}
	p := &mathParser{toks: toks, ids: ids}
	v := p.sum()
	if p.err == nil && p.pos < len(p.toks) {
		p.err = mathErr("unexpected %q in %q", p.toks[p.pos], expr)
	}
	if p.err != nil {
		return series{}, p.err
	}
	if v.isScalar {
		return series{}, mathErr("%q has no metric in it; name a query id, e.g. m1/m2", expr)
	}
	return v.ser, nil
}

func mathTokens(expr string) ([]string, *apiError) {
	var toks []string
	r := []rune(expr)
	for i := 0; i < len(r); {
		c := r[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case strings.ContainsRune("+-*/()", c):
			toks = append(toks, string(c))
			i++
		case unicode.IsDigit(c) || c == '.':
			j := i
			for j < len(r) && (unicode.IsDigit(r[j]) || r[j] == '.') {
				j++
			}
			toks = append(toks, string(r[i:j]))
			i = j
		case unicode.IsLetter(c):
			j := i
			for j < len(r) && (unicode.IsLetter(r[j]) || unicode.IsDigit(r[j]) || r[j] == '_') {
				j++
			}
			if j < len(r) && r[j] == '(' {
				return nil, mathErr("function %s is not simulated; the sandbox evaluates + - * / over query ids and numbers", string(r[i:j]))
			}
			toks = append(toks, string(r[i:j]))
			i = j
		default:
			return nil, mathErr("unexpected %q in %q", string(c), expr)
		}
	}
	return toks, nil
}

func (p *mathParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *mathParser) sum() mathValue {
	v := p.product()
	for p.err == nil && (p.peek() == "+" || p.peek() == "-") {
		op := p.toks[p.pos]
		p.pos++
		v = combine(v, p.product(), op)
	}
	return v
}

func (p *mathParser) product() mathValue {
	v := p.operand()
	for p.err == nil && (p.peek() == "*" || p.peek() == "/") {
		op := p.toks[p.pos]
		p.pos++
		v = combine(v, p.operand(), op)
	}
	return v
}

func (p *mathParser) operand() mathValue {
	t := p.peek()
	p.pos++
	switch {
	case t == "":
		p.err = mathErr("the expression ends where an operand was expected")
	case t == "(":
		v := p.sum()
		if p.peek() != ")" {
			p.err = mathErr("a parenthesis is not closed")
		}
		p.pos++
		return v
	case t == "-":
		return combine(mathValue{isScalar: true}, p.operand(), "-")
	case unicode.IsDigit(rune(t[0])) || t[0] == '.':
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			p.err = mathErr("%q is not a number", t)
		}
		return mathValue{scalar: f, isScalar: true}
	default:
		ser, ok := p.ids[t]
		if !ok {
			p.err = mathErr("%q is not the id of a query in this request", t)
		}
		return mathValue{ser: ser}
	}
	return mathValue{}
}

// combine applies op pointwise. Two series meet on their common timestamps; a division by
// zero drops the point, as CloudWatch leaves it out.
func combine(a, b mathValue, op string) mathValue {
	f := func(x, y float64) (float64, bool) {
		switch op {
		case "+":
			return x + y, true
		case "-":
			return x - y, true
		case "*":
			return x * y, true
		default:
			return x / y, y != 0
		}
	}
	if a.isScalar && b.isScalar {
		v, _ := f(a.scalar, b.scalar)
		return mathValue{scalar: v, isScalar: true}
	}
	var out series
	add := func(t time.Time, x, y float64) {
		if v, ok := f(x, y); ok {
			out.times, out.values = append(out.times, t), append(out.values, v)
		}
	}
	switch {
	case a.isScalar:
		for i, t := range b.ser.times {
			add(t, a.scalar, b.ser.values[i])
		}
	case b.isScalar:
		for i, t := range a.ser.times {
			add(t, a.ser.values[i], b.scalar)
		}
	default:
		at := map[time.Time]float64{}
		for i, t := range a.ser.times {
			at[t] = a.ser.values[i]
		}
		for i, t := range b.ser.times {
			if x, ok := at[t]; ok {
				add(t, x, b.ser.values[i])
			}
		}
	}
	return mathValue{ser: out}
}
