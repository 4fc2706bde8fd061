package contract

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// schemaSet collects the JSON Schemas of the messages and enums reachable
// from the bound types, one component per proto full name, in the order
// first met (bound types by subject, then depth first).
type schemaSet struct {
	c    *Contract
	done map[protoreflect.FullName]bool
	out  omap
	err  error // the first type no schema could be made for
}

// timestamp is google.protobuf.Timestamp's schema: its proto3 JSON form.
const timestamp protoreflect.FullName = "google.protobuf.Timestamp"

func (s *schemaSet) message(md protoreflect.MessageDescriptor) {
	if s.done[md.FullName()] {
		return
	}
	s.done[md.FullName()] = true
	fields := md.Fields()
	props := omap{}
	var nested []protoreflect.Descriptor
	for i := range fields.Len() {
		fd := fields.Get(i)
		props = append(props, kv{string(fd.Name()), s.field(fd)})
		for _, t := range []protoreflect.FieldDescriptor{fd, fd.MapValue()} {
			if t == nil {
				continue
			}
			if t.Message() != nil && !t.IsMap() && t.Message().FullName() != timestamp {
				nested = append(nested, t.Message())
			}
			if t.Enum() != nil {
				nested = append(nested, t.Enum())
			}
		}
	}
	schema := omap{{"type", "object"}, {"title", string(md.Name())}}
	if d := s.c.Comment(md.FullName()); d != "" {
		schema = append(schema, kv{"description", d})
	}
	schema = append(schema, kv{"x-protobuf-message", string(md.FullName())}, kv{"properties", props})
	s.out = append(s.out, kv{string(md.FullName()), schema})
	for _, d := range nested {
		switch d := d.(type) {
		case protoreflect.MessageDescriptor:
			s.message(d)
		case protoreflect.EnumDescriptor:
			s.enum(d)
		}
	}
}

func (s *schemaSet) enum(ed protoreflect.EnumDescriptor) {
	if s.done[ed.FullName()] {
		return
	}
	s.done[ed.FullName()] = true
	values := ed.Values()
	names, numbers := make([]string, 0, values.Len()), omap{}
	lines := []string{}
	if d := s.c.Comment(ed.FullName()); d != "" {
		lines = append(lines, d, "")
	}
	for i := range values.Len() {
		v := values.Get(i)
		names = append(names, string(v.Name()))
		numbers = append(numbers, kv{string(v.Name()), int32(v.Number())})
		line := fmt.Sprintf("- %s (%d)", v.Name(), v.Number())
		if d := s.c.Comment(v.FullName()); d != "" {
			line += ": " + strings.Join(strings.Fields(d), " ")
		}
		lines = append(lines, line)
	}
	s.out = append(s.out, kv{string(ed.FullName()), omap{
		{"type", "string"},
		{"title", string(ed.Name())},
		{"description", strings.Join(lines, "\n")},
		{"enum", names},
		{"x-protobuf-enum", string(ed.FullName())},
		{"x-protobuf-enum-numbers", numbers},
	}})
}

// field is one field's schema: its type's, with the field's comment,
// number and .proto type.
func (s *schemaSet) field(fd protoreflect.FieldDescriptor) omap {
	var schema omap
	switch {
	case fd.IsMap():
		schema = omap{
			{"type", "object"},
			{"additionalProperties", s.value(fd.MapValue())},
		}
	case fd.IsList():
		schema = omap{{"type", "array"}, {"items", s.value(fd)}}
	default:
		schema = wrap(s.value(fd))
	}
	if d := s.c.Comment(fd.FullName()); d != "" {
		schema = append(schema, kv{"description", d})
	}
	schema = append(schema, kv{"x-protobuf-field-number", int32(fd.Number())}, kv{"x-protobuf-type", protoType(fd)})
	if o := fd.ContainingOneof(); o != nil {
		if o.IsSynthetic() {
			schema = append(schema, kv{"x-protobuf-optional", true})
		} else {
			schema = append(schema, kv{"x-protobuf-oneof", string(o.Name())})
		}
	}
	return schema
}

// wrap makes a $ref schema one that may carry siblings (description and
// the x- keys): JSON Schema draft 7 ignores the siblings of a bare $ref.
func wrap(schema omap) omap {
	if len(schema) == 1 && schema[0].k == "$ref" {
		return omap{{"allOf", []omap{schema}}}
	}
	return schema
}

// value is the schema of one value of fd's type (an element, for a
// list): scalars as in proto3's JSON mapping, messages and enums by
// reference, Timestamp as an RFC 3339 string.
func (s *schemaSet) value(fd protoreflect.FieldDescriptor) omap {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if fd.Message().FullName() == timestamp {
			return omap{{"type", "string"}, {"format", "date-time"}}
		}
		if strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf.") {
			// A well-known type whose JSON form this generator does not
			// know yet: fail loudly rather than publish a wrong schema.
			s.fail(fmt.Errorf("no schema for %s (field %s): teach schemaSet.value its JSON form", fd.Message().FullName(), fd.FullName()))
			return omap{}
		}
		return ref("components", "schemas", string(fd.Message().FullName()))
	case protoreflect.EnumKind:
		return ref("components", "schemas", string(fd.Enum().FullName()))
	case protoreflect.BoolKind:
		return omap{{"type", "boolean"}}
	case protoreflect.StringKind:
		return omap{{"type", "string"}}
	case protoreflect.BytesKind:
		return omap{{"type", "string"}, {"contentEncoding", "base64"}}
	case protoreflect.FloatKind:
		return omap{{"type", "number"}, {"format", "float"}}
	case protoreflect.DoubleKind:
		return omap{{"type", "number"}, {"format", "double"}}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return omap{{"type", "integer"}, {"format", "int32"}}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return omap{{"type", "integer"}, {"format", "uint32"}, {"minimum", 0}}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return omap{{"type", "integer"}, {"format", "int64"}}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return omap{{"type", "integer"}, {"format", "uint64"}, {"minimum", 0}}
	}
	s.fail(fmt.Errorf("field %s has unknown kind %v", fd.FullName(), fd.Kind()))
	return omap{}
}

func (s *schemaSet) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

// protoType is fd's type as a .proto file spells it.
func protoType(fd protoreflect.FieldDescriptor) string {
	one := func(fd protoreflect.FieldDescriptor) string {
		switch {
		case fd.Message() != nil:
			return string(fd.Message().FullName())
		case fd.Enum() != nil:
			return string(fd.Enum().FullName())
		}
		return fd.Kind().String()
	}
	switch {
	case fd.IsMap():
		return "map<" + one(fd.MapKey()) + ", " + one(fd.MapValue()) + ">"
	case fd.IsList():
		return "repeated " + one(fd)
	}
	return one(fd)
}
