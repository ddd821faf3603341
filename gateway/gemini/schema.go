package gemini

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Gemini takes function parameters and response schemas as its Schema
// object, a subset of OpenAPI 3.0, and answers 400 "Unknown name" for any
// other key. These are the keys both the Gemini API (v1beta) and Vertex AI
// (v1) accept; JSON Schema's additionalProperties, $schema, $ref, $defs,
// oneOf, allOf, const, exclusiveMinimum … are rewritten or dropped.
var schemaKeys = map[string]bool{
	"type": true, "format": true, "title": true, "description": true, "nullable": true,
	"enum": true, "items": true, "minItems": true, "maxItems": true,
	"properties": true, "required": true, "minProperties": true, "maxProperties": true,
	"minLength": true, "maxLength": true, "pattern": true, "minimum": true, "maximum": true,
	"example": true, "default": true, "anyOf": true, "propertyOrdering": true,
}

// The Gemini API accepts only these formats and rejects a request naming
// any other (Vertex AI is more lenient; the intersection is sent).
var schemaFormats = map[string]bool{
	"enum": true, "date-time": true, "float": true, "double": true, "int32": true, "int64": true,
}

// maxSchemaNodes bounds the schema after $ref inlining, which could
// otherwise grow exponentially (each definition referring twice to the
// next).
const maxSchemaNodes = 5000

// object is a JSON object that keeps its key order, so a schema's
// properties reach Gemini in the order the caller wrote them.
type object []member

type member struct {
	Key   string
	Value any
}

func (o object) get(key string) (any, bool) {
	for _, m := range o {
		if m.Key == key {
			return m.Value, true
		}
	}
	return nil, false
}

func (o *object) set(key string, v any) {
	for i := range *o {
		if (*o)[i].Key == key {
			(*o)[i].Value = v
			return
		}
	}
	*o = append(*o, member{key, v})
}

func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.Key)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(m.Value)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// decodeOrdered parses JSON into object, []any, string, json.Number, bool
// or nil.
func decodeOrdered(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		o := object{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			o = append(o, member{kt.(string), v})
		}
		_, err := dec.Token()
		return o, err
	case json.Delim('['):
		a := []any{}
		for dec.More() {
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.Token()
		return a, err
	}
	return tok, nil
}

// geminiSchema rewrites a JSON Schema into Gemini's Schema object. With
// ordered set, objects also get propertyOrdering so that structured output
// follows the caller's key order rather than Gemini's alphabetical default.
func geminiSchema(raw json.RawMessage, ordered bool) (object, error) {
	v, err := decodeOrdered(raw)
	if err != nil {
		return nil, err
	}
	root, ok := v.(object)
	if !ok {
		return nil, fmt.Errorf("a schema must be a JSON object")
	}
	c := &schemaCleaner{defs: map[string]object{}, ordered: ordered}
	for _, key := range []string{"$defs", "definitions"} {
		if d, ok := root.get(key); ok {
			if defs, ok := d.(object); ok {
				for _, m := range defs {
					if def, ok := m.Value.(object); ok {
						c.defs["#/"+key+"/"+m.Key] = def
					}
				}
			}
		}
	}
	out := c.clean(root, nil)
	if c.nodes > maxSchemaNodes {
		return nil, fmt.Errorf("the schema has more than %d nodes once its $refs are inlined", maxSchemaNodes)
	}
	return out, nil
}

type schemaCleaner struct {
	defs    map[string]object
	ordered bool
	nodes   int
}

// clean rewrites one schema; refs are the definitions being inlined on the
// way here, so that a recursive one stops instead of unrolling forever.
func (c *schemaCleaner) clean(s object, refs []string) object {
	c.nodes++
	if c.nodes > maxSchemaNodes {
		return object{}
	}
	s, refs = c.resolve(s, refs)
	out := object{}
	for _, m := range s {
		switch m.Key {
		case "type":
			c.setType(&out, m.Value)
		case "properties":
			props, ok := m.Value.(object)
			if !ok {
				continue
			}
			cleaned := object{}
			for _, p := range props {
				if ps, ok := p.Value.(object); ok {
					cleaned = append(cleaned, member{p.Key, c.clean(ps, refs)})
				}
			}
			out.set("properties", cleaned)
		case "items":
			items := m.Value
			if tuple, ok := items.([]any); ok && len(tuple) > 0 {
				items = tuple[0] // Gemini has no tuples: describe the first element
			}
			if is, ok := items.(object); ok {
				out.set("items", c.clean(is, refs))
			}
		case "anyOf", "oneOf":
			c.setAnyOf(&out, m.Value, refs)
		case "const":
			out.set("enum", []any{enumValue(m.Value)})
		case "enum":
			if values, ok := m.Value.([]any); ok {
				enum := make([]any, 0, len(values))
				for _, e := range values {
					if e == nil {
						out.set("nullable", true)
						continue
					}
					enum = append(enum, enumValue(e))
				}
				out.set("enum", enum)
			}
		case "format":
			if f, ok := m.Value.(string); ok && schemaFormats[f] {
				out.set("format", f)
			}
		default:
			if schemaKeys[m.Key] {
				out.set(m.Key, m.Value)
			}
		}
	}
	if c.ordered {
		if props, ok := out.get("properties"); ok {
			if _, has := out.get("propertyOrdering"); !has && len(props.(object)) > 1 {
				names := make([]any, len(props.(object)))
				for i, p := range props.(object) {
					names[i] = p.Key
				}
				out.set("propertyOrdering", names)
			}
		}
	}
	return out
}

// resolve inlines a local $ref ("#/$defs/Name") and a single-element allOf,
// the two ways generated schemas (pydantic, zod) point at a definition. A
// definition already being inlined further up becomes a bare object: Gemini
// has no way to say "the same shape again".
func (c *schemaCleaner) resolve(s object, refs []string) (object, []string) {
	for {
		var target object
		if ref, ok := s.get("$ref"); ok {
			r, _ := ref.(string)
			def, ok := c.defs[r]
			if !ok {
				return s, refs
			}
			if slices.Contains(refs, r) {
				return object{{"type", "object"}}, refs
			}
			refs = append(refs[:len(refs):len(refs)], r)
			target = def
		} else if all, ok := s.get("allOf"); ok {
			list, _ := all.([]any)
			if len(list) != 1 {
				return s, refs
			}
			if target, ok = list[0].(object); !ok {
				return s, refs
			}
		} else {
			return s, refs
		}
		// The referring schema's own keys (a description) win over the
		// definition's.
		merged := append(object{}, target...)
		for _, m := range s {
			if m.Key != "$ref" && m.Key != "allOf" {
				merged.set(m.Key, m.Value)
			}
		}
		s = merged
	}
}

// setType maps JSON Schema's ["string", "null"] to Gemini's single type
// plus nullable.
func (c *schemaCleaner) setType(out *object, v any) {
	switch t := v.(type) {
	case string:
		if t == "null" {
			out.set("nullable", true)
			return
		}
		out.set("type", t)
	case []any:
		for _, e := range t {
			name, _ := e.(string)
			if name == "null" {
				out.set("nullable", true)
			} else if _, has := out.get("type"); !has && name != "" {
				out.set("type", name)
			}
		}
	}
}

// setAnyOf keeps the alternatives, folding a {"type": "null"} branch into
// nullable and a lone remaining branch into the schema itself.
func (c *schemaCleaner) setAnyOf(out *object, v any, refs []string) {
	list, _ := v.([]any)
	var alts []any
	for _, e := range list {
		alt, ok := e.(object)
		if !ok {
			continue
		}
		if t, _ := alt.get("type"); t == "null" && len(alt) == 1 {
			out.set("nullable", true)
			continue
		}
		alts = append(alts, c.clean(alt, refs))
	}
	switch len(alts) {
	case 0:
	case 1:
		for _, m := range alts[0].(object) {
			if _, has := out.get(m.Key); !has {
				out.set(m.Key, m.Value)
			}
		}
	default:
		out.set("anyOf", alts)
	}
}

// enumValue renders an enum member as the string Gemini expects.
func enumValue(v any) any {
	switch e := v.(type) {
	case string:
		return e
	case json.Number:
		return e.String()
	case bool:
		if e {
			return "true"
		}
		return "false"
	}
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), `"`)
}

// hasProperties says whether a cleaned object schema declares any
// parameter: Gemini rejects an OBJECT with empty properties ("should be
// non-empty for OBJECT type"), so a function without parameters omits them.
func hasProperties(s object) bool {
	p, ok := s.get("properties")
	if !ok {
		return false
	}
	props, _ := p.(object)
	return len(props) > 0
}
