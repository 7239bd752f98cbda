// Package spec reads migration spec files (YAML or JSON mapped onto the proto schema in
// proto/ferry/v1/spec.proto) and turns them into the validated, normalised structs the
// workflows take. Every error names the field path in the spec, e.g.
// `dnsShift.schedule[2]`, so the API can answer InvalidArgument naming the field and the
// CLI can point at the line to fix.
package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"sigs.k8s.io/yaml"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
)

// FieldError is a problem with one field of a spec. Field is the path in the spec's own
// (lowerCamelCase) names, e.g. "dnsShift.gates[0].http.url"; empty for the whole file.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// maxSpecBytes bounds what a spec file may hold; real specs are a few KB.
const maxSpecBytes = 1 << 20

// ParseFile reads a spec file; the extension picks the format (.json, else YAML).
func ParseFile(path string) (*ferryv1.MigrationSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	m, err := Parse(data, filepath.Ext(path))
	if err != nil {
		return nil, fmt.Errorf("spec %s: %w", path, err)
	}
	return m, nil
}

// Parse decodes a spec. ext is the file extension (".json", ".yaml", ".yml" or "" for
// YAML). Unknown fields are errors naming the field (a misspelt `bakeTime` silently
// ignored would run a shift with the default), and enum values may be written short
// (`gradual` for ROLLBACK_MODE_GRADUAL).
func Parse(data []byte, ext string) (*ferryv1.MigrationSpec, error) {
	m := &ferryv1.MigrationSpec{}
	if err := ParseMessage(data, ext, m); err != nil {
		return nil, err
	}
	return m, nil
}

// ParseMessage decodes a YAML or JSON document into m (any of ferry's file schemas: a
// migration spec, a GameDay scenario) with Parse's rules: unknown fields named, short enum
// values, durations as strings.
func ParseMessage(data []byte, ext string, m proto.Message) error {
	if len(data) > maxSpecBytes {
		return &FieldError{Msg: fmt.Sprintf("spec is %d bytes; the limit is %d", len(data), maxSpecBytes)}
	}
	var js []byte
	switch strings.ToLower(ext) {
	case ".json":
		js = data
	case ".yaml", ".yml", "":
		var err error
		if js, err = yaml.YAMLToJSON(data); err != nil {
			return &FieldError{Msg: "not valid YAML: " + err.Error()}
		}
	default:
		return &FieldError{Msg: fmt.Sprintf("unknown spec format %q; use .yaml, .yml or .json", ext)}
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return &FieldError{Msg: "not valid JSON: " + err.Error()}
	}
	if doc == nil {
		return &FieldError{Msg: "the spec is empty"}
	}
	md := m.ProtoReflect().Descriptor()
	doc, err := normalize("", doc, md)
	if err != nil {
		return err
	}
	js, err = json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("re-encode spec: %w", err)
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, m); err != nil {
		return &FieldError{Msg: fmt.Sprintf("does not match the schema (proto/ferry/v1, %s): %s", md.Name(), cleanProtoErr(err))}
	}
	return nil
}

// cleanProtoErr drops protojson's "proto: (line 1:57)" position, which points into the
// re-encoded JSON rather than the user's file.
func cleanProtoErr(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "proto: ")
	if strings.HasPrefix(s, "(line ") {
		if i := strings.Index(s, "): "); i >= 0 {
			s = s[i+3:]
		}
	}
	return s
}

// normalize walks the decoded document alongside the message descriptor: it reports unknown
// fields with their path (protojson only names the field) and expands short enum values.
func normalize(path string, v any, md protoreflect.MessageDescriptor) (any, error) {
	if md.FullName() == "google.protobuf.Duration" {
		return durationValue(path, v)
	}
	if isWellKnown(md) {
		return v, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fieldErr(orRoot(path), "must be an object with fields of %s, got %s", md.Name(), jsonKind(v))
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(k))
		}
		p := join(path, k)
		if fd == nil {
			return nil, fieldErr(p, "unknown field%s", suggest(k, md))
		}
		val := obj[k]
		if val == nil {
			continue
		}
		if fd.IsMap() {
			// map<string, V> fields (amiShare.imageTags, kmsKeys, addTags): an object whose
			// values are checked like a field of the value type, path "field.key".
			m, ok := val.(map[string]any)
			if !ok {
				return nil, fieldErr(p, "must be an object of key: value pairs, got %s", jsonKind(val))
			}
			mkeys := make([]string, 0, len(m))
			for mk := range m {
				mkeys = append(mkeys, mk)
			}
			sort.Strings(mkeys) // the first problem reported is the same every time
			for _, mk := range mkeys {
				mv := m[mk]
				if mv == nil {
					return nil, fieldErr(join(p, mk), "has no value")
				}
				out, err := normalizeValue(join(p, mk), mv, fd.MapValue())
				if err != nil {
					return nil, err
				}
				m[mk] = out
			}
			continue
		}
		if fd.IsList() {
			list, ok := val.([]any)
			if !ok {
				return nil, fieldErr(p, "must be a list, got %s", jsonKind(val))
			}
			for i := range list {
				out, err := normalizeValue(fmt.Sprintf("%s[%d]", p, i), list[i], fd)
				if err != nil {
					return nil, err
				}
				list[i] = out
			}
			continue
		}
		out, err := normalizeValue(p, val, fd)
		if err != nil {
			return nil, err
		}
		obj[k] = out
	}
	return obj, nil
}

func normalizeValue(path string, v any, fd protoreflect.FieldDescriptor) (any, error) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return normalize(path, v, fd.Message())
	case protoreflect.EnumKind:
		s, ok := v.(string)
		if !ok {
			return v, nil // numbers are protojson's business
		}
		return enumValue(path, s, fd.Enum())
	case protoreflect.StringKind:
		switch x := v.(type) {
		case bool:
			// YAML 1.1 reads yes/no/on/off/y/n as booleans: `to: y` arrives as true.
			return nil, fieldErr(path, "got the boolean %v where text belongs; quote the value (YAML reads yes, no, on, off, y and n as booleans)", x)
		case json.Number:
			return x.String(), nil // `from: 1` means the set identifier "1"
		}
	}
	return v, nil
}

// durationValue accepts Go durations (500ms, 2m, 1h30m) as well as protojson's seconds
// form (20s, 0.5s), because people write the former.
func durationValue(path string, v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, fieldErr(path, "must be a duration such as 30s, 2m or 500ms, got %s", jsonKind(v))
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return nil, fieldErr(path, "%q is not a duration; write e.g. 30s, 2m or 500ms", s)
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s", nil
}

// enumValue accepts the full name (ROLLBACK_MODE_GRADUAL) or the short one (gradual).
func enumValue(path, s string, ed protoreflect.EnumDescriptor) (any, error) {
	if ed.Values().ByName(protoreflect.Name(s)) != nil {
		return s, nil
	}
	prefix := strings.TrimSuffix(string(ed.Values().Get(0).Name()), "UNSPECIFIED")
	full := prefix + strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
	if ed.Values().ByName(protoreflect.Name(full)) != nil && !strings.HasSuffix(full, "_UNSPECIFIED") {
		return full, nil
	}
	var names []string
	for i := 1; i < ed.Values().Len(); i++ {
		names = append(names, strings.ToLower(strings.TrimPrefix(string(ed.Values().Get(i).Name()), prefix)))
	}
	return nil, fieldErr(path, "unknown value %q; use one of %s", s, strings.Join(names, ", "))
}

func isWellKnown(md protoreflect.MessageDescriptor) bool {
	return strings.HasPrefix(string(md.FullName()), "google.protobuf.")
}

// suggest names the field the user probably meant: same letters ignoring case and
// separators, or the closest by edit distance.
func suggest(k string, md protoreflect.MessageDescriptor) string {
	squash := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s))
	}
	best, bestD := "", 3
	var all []string
	for i := 0; i < md.Fields().Len(); i++ {
		name := md.Fields().Get(i).JSONName()
		all = append(all, name)
		if squash(name) == squash(k) {
			return fmt.Sprintf("; did you mean %q?", name)
		}
		if d := editDistance(squash(k), squash(name)); d < bestD {
			best, bestD = name, d
		}
	}
	if best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return "; fields here are " + strings.Join(all, ", ")
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30 // not worth comparing; also bounds the work on hostile input
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func orRoot(path string) string {
	if path == "" {
		return "(spec)"
	}
	return path
}

// AsFieldError returns the FieldError in err's chain, if any.
func AsFieldError(err error) (*FieldError, bool) {
	var fe *FieldError
	ok := errors.As(err, &fe)
	return fe, ok
}
