package subjects_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	dlqv1 "github.com/switchyard/switchyard/proto/gen/switchyard/dlq/v1"
	supportv1 "github.com/switchyard/switchyard/proto/gen/switchyard/support/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
)

// TestRoundTrip fills every field of every bound message type, nested
// messages, lists and maps included, and checks it survives Marshal and
// Unmarshal, directly and through Decode on its subject.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, b := range subjects.All() {
		t.Run(string(b.Type.Descriptor().Name()), func(t *testing.T) {
			t.Parallel()
			want := b.Type.New()
			fill(want, 1)
			data, err := proto.Marshal(want.Interface())
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			got := b.Type.New().Interface()
			if err := proto.Unmarshal(data, got); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if !proto.Equal(got, want.Interface()) {
				t.Errorf("round trip changed the message:\n got %v\nwant %v", got, want)
			}

			subject, err := subjects.Of(want.Interface())
			if err != nil {
				t.Fatalf("Of: %v", err)
			}
			decoded, err := subjects.Decode(subject, data)
			if err != nil {
				t.Fatalf("Decode(%q): %v", subject, err)
			}
			if !proto.Equal(decoded, want.Interface()) {
				t.Errorf("Decode(%q) = %v, want %v", subject, decoded, want)
			}
		})
	}
}

// fill sets every field of m to a non-zero value derived from seed.
func fill(m protoreflect.Message, seed int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		n := seed*100 + i + 1
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for j := range 2 {
				key := scalar(fd.MapKey(), n+j).MapKey()
				if fd.MapValue().Message() != nil {
					v := mp.NewValue()
					fill(v.Message(), n+j)
					mp.Set(key, v)
				} else {
					mp.Set(key, scalar(fd.MapValue(), n+j))
				}
			}
		case fd.IsList():
			l := m.Mutable(fd).List()
			for j := range 2 {
				if fd.Message() != nil {
					v := l.NewElement()
					fill(v.Message(), n+j)
					l.Append(v)
				} else {
					l.Append(scalar(fd, n+j))
				}
			}
		case fd.Message() != nil:
			fill(m.Mutable(fd).Message(), n)
		default:
			m.Set(fd, scalar(fd, n))
		}
	}
}

func scalar(fd protoreflect.FieldDescriptor, n int) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		return protoreflect.ValueOfEnum(vals.Get(1 + n%(vals.Len()-1)).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(n))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(int64(n) << 33)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(n))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(n) << 33)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(n) + 0.5)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(float64(n) + 0.25)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(fmt.Sprintf("%s-%d-é", fd.Name(), n))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte{0, 0xff, byte(n)})
	}
	panic(fmt.Sprintf("fill: unhandled kind %v of %s", fd.Kind(), fd.FullName()))
}

// TestNamespaces checks each subject sits under the stream of its package
// and is a literal subject (no wildcards), and that every billing event
// carries the envelope.
func TestNamespaces(t *testing.T) {
	t.Parallel()
	prefixes := map[protoreflect.FullName]string{
		"switchyard.billing.v1": "billing.",
		"switchyard.crm.v1":     "crm.",
		"switchyard.support.v1": "support.",
		"switchyard.dlq.v1":     wire.DLQPrefix,
	}
	for _, b := range subjects.All() {
		name := b.Type.Descriptor().FullName()
		prefix, ok := prefixes[name.Parent()]
		if !ok {
			t.Errorf("%s: package %s has no stream; want one of billing, crm, support, dlq", name, name.Parent())
			continue
		}
		if !strings.HasPrefix(b.Subject, prefix) {
			t.Errorf("%s: subject %q is not under %q", name, b.Subject, prefix)
		}
		if prefix == wire.DLQPrefix {
			if b.Subject != wire.DLQAll {
				t.Errorf("%s: subject %q, want %q", name, b.Subject, wire.DLQAll)
			}
			continue
		}
		for _, tok := range strings.Split(b.Subject, ".") {
			if !subjects.ValidToken(tok) {
				t.Errorf("%s: subject %q has an invalid token %q", name, b.Subject, tok)
			}
		}
		_, isBilling := b.Type.New().Interface().(subjects.BillingEvent)
		if isBilling != (prefix == "billing.") {
			t.Errorf("%s: implements BillingEvent = %v, but subject is %q", name, isBilling, b.Subject)
		}
	}
}

// TestOneToOne: no two message types share a subject, and no message type
// has two subjects.
func TestOneToOne(t *testing.T) {
	t.Parallel()
	bySubject := map[string]protoreflect.FullName{}
	byType := map[protoreflect.FullName]string{}
	for _, b := range subjects.All() {
		name := b.Type.Descriptor().FullName()
		if other, dup := bySubject[b.Subject]; dup {
			t.Errorf("subject %q carries both %s and %s", b.Subject, other, name)
		}
		if other, dup := byType[name]; dup {
			t.Errorf("%s is bound to both %q and %q", name, other, b.Subject)
		}
		bySubject[b.Subject], byType[name] = name, b.Subject
	}
}

// TestEveryEventBound: a top-level message that is an event (a billing
// message with the envelope, any crm or support message, the dead letter)
// must have a subject, or publishers would have to type one.
func TestEveryEventBound(t *testing.T) {
	t.Parallel()
	bound := map[protoreflect.FullName]bool{}
	for _, b := range subjects.All() {
		bound[b.Type.Descriptor().FullName()] = true
	}
	meta := (*billingv1.EventMeta)(nil).ProtoReflect().Descriptor().FullName()
	files := []protoreflect.FileDescriptor{
		billingv1.File_switchyard_billing_v1_billing_proto,
		crmv1.File_switchyard_crm_v1_crm_proto,
		supportv1.File_switchyard_support_v1_support_proto,
	}
	for _, f := range files {
		msgs := f.Messages()
		for i := range msgs.Len() {
			md := msgs.Get(i)
			isEvent := true
			if f.Package() == "switchyard.billing.v1" {
				fd := md.Fields().ByNumber(1)
				isEvent = fd != nil && fd.Name() == "meta" && fd.Message() != nil && fd.Message().FullName() == meta
				if !isEvent && hasField(md, meta) {
					t.Errorf("%s: carries EventMeta but not as field 1 \"meta\"", md.FullName())
				}
			}
			if isEvent && !bound[md.FullName()] {
				t.Errorf("%s: event with no subject; add it to the bindings in subjects.go and to proto/README.md", md.FullName())
			}
		}
	}
	if !bound[(*dlqv1.DeadLetter)(nil).ProtoReflect().Descriptor().FullName()] {
		t.Error("DeadLetter has no subject")
	}
}

func hasField(md protoreflect.MessageDescriptor, typ protoreflect.FullName) bool {
	fields := md.Fields()
	for i := range fields.Len() {
		if m := fields.Get(i).Message(); m != nil && m.FullName() == typ {
			return true
		}
	}
	return false
}

// TestREADME: every subject and message type is documented for subscribers.
func TestREADME(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range subjects.All() {
		subject := b.Subject
		if subject == wire.DLQAll {
			subject = "dlq.<consumer>"
		}
		for _, want := range []string{"`" + subject + "`", "`" + string(b.Type.Descriptor().FullName()) + "`"} {
			if !strings.Contains(string(doc), want) {
				t.Errorf("proto/README.md does not mention %s", want)
			}
		}
		checkFieldsDocumented(t, string(doc), b.Type.Descriptor())
	}
}

// checkFieldsDocumented checks that every field of md, and of the messages
// of our own it contains, is named in the doc.
func checkFieldsDocumented(t *testing.T, doc string, md protoreflect.MessageDescriptor) {
	t.Helper()
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !strings.Contains(doc, "`"+string(fd.Name())+"`") {
			t.Errorf("proto/README.md does not mention field `%s` of %s", fd.Name(), md.FullName())
		}
		if fd.IsMap() {
			fd = fd.MapValue()
		}
		if sub := fd.Message(); sub != nil && strings.HasPrefix(string(sub.FullName()), "switchyard.") && sub != md {
			checkFieldsDocumented(t, doc, sub)
		}
	}
}

func TestOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		msg     proto.Message
		want    string
		wantErr error
	}{
		{"billing", &billingv1.PaymentFailed{}, subjects.BillingPaymentFailed, nil},
		{"crm", &crmv1.ContactPendingRetry{}, subjects.CRMContactPendingRetry, nil},
		{"support", &supportv1.TicketOpened{}, subjects.SupportTicketOpened, nil},
		{"dead letter", &dlqv1.DeadLetter{Consumer: "identity"}, "dlq.identity", nil},
		{"dead letter without consumer", &dlqv1.DeadLetter{}, "", subjects.ErrInvalidConsumer},
		{"dead letter with dotted consumer", &dlqv1.DeadLetter{Consumer: "a.b"}, "", subjects.ErrInvalidConsumer},
		{"dead letter with wildcard consumer", &dlqv1.DeadLetter{Consumer: ">"}, "", subjects.ErrInvalidConsumer},
		{"part of an event", &billingv1.Plan{}, "", subjects.ErrUnbound},
		{"envelope", &billingv1.EventMeta{}, "", subjects.ErrUnbound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := subjects.Of(tt.msg)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Of() error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Of() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	ev := &billingv1.SubscriptionCanceled{
		Meta:        &billingv1.EventMeta{EventId: "bill_1", CanonicalCustomerId: "cust_1", SourceEventIds: []string{"evt_1"}},
		AtPeriodEnd: true,
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	m, err := subjects.Decode(subjects.BillingSubscriptionCanceled, data)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := m.(subjects.BillingEvent)
	if !ok {
		t.Fatalf("Decode returned %T, not a BillingEvent", m)
	}
	if got, want := got.GetMeta().GetEventId(), "bill_1"; got != want {
		t.Errorf("event id = %q, want %q", got, want)
	}

	tests := []struct {
		name    string
		subject string
		wantErr error
	}{
		{"unknown billing subject", "billing.subscription.exploded", subjects.ErrUnknownSubject},
		{"stream wildcard", wire.BillingAll, subjects.ErrUnknownSubject},
		{"dlq wildcard", wire.DLQAll, subjects.ErrUnknownSubject},
		{"dlq without consumer", wire.DLQPrefix, subjects.ErrUnknownSubject},
		{"dlq with two tokens", "dlq.a.b", subjects.ErrUnknownSubject},
		{"raw stripe event", wire.StripeEventSubject("invoice.paid"), subjects.ErrUnknownSubject},
		{"dlq", subjects.DLQ("crm"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := subjects.Decode(tt.subject, nil)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("Decode(%q) error = %v, want %v", tt.subject, err, tt.wantErr)
			}
		})
	}

	if _, err := subjects.Decode(subjects.BillingPaymentFailed, []byte{0xff, 0xff, 0xff}); err == nil {
		t.Error("Decode of malformed data succeeded, want an error")
	}
}
