package natsbus

import (
	"fmt"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
)

// contract lists the event subjects of proto/subjects under prefix: a
// publisher is allowed the events of the contract, not its whole subject
// space, so `switchyard doctor`'s probe (billing.doctor.probe) is refused
// even to identity, the billing publisher.
func contract(prefix string) []string {
	var out []string
	for _, b := range subjects.All() {
		if strings.HasPrefix(b.Subject, prefix) {
			out = append(out, b.Subject)
		}
	}
	return out
}

// The NATS identities of the hub: one per service, one for the operator's
// CLI and one for `switchyard migrate`. A server configured from
// Permissions lets each do its job and nothing more.
const (
	IdentityGateway   = "gateway"
	IdentityIdentity  = "identity"
	IdentityCRM       = "crm"
	IdentitySupport   = "support"
	IdentityAlerts    = "alerts"
	IdentityProjector = "projector"
	// IdentityOperator is the operator's CLI and the projector's console
	// actions: dead-letter replay and discard, and linking an unlinked
	// payer to a customer (reconcile posts to the services over HTTP, not
	// NATS).
	IdentityOperator = "operator"
	// IdentityMigrate is `switchyard migrate` (and `switchyard dev` before
	// it starts the services): the one identity that may create, change or
	// delete streams and consumers.
	IdentityMigrate = "migrate"
)

// Permission is what one NATS identity may publish and subscribe to: the
// allow lists of a nats-server user (anything not listed is refused).
type Permission struct {
	Identity  string   `json:"identity"`
	Publish   []string `json:"publish"`
	Subscribe []string `json:"subscribe"`
}

// jsAPI is the JetStream API subject prefix.
const jsAPI = "$JS.API."

// InboxPrefix is identity's own inbox prefix, where every reply to it
// lands: JetStream API answers, PubAcks and the messages its pull
// consumers hand out. Each identity may subscribe to its own inboxes only,
// so none can read another's deliveries; a client logging in as identity
// must use it (nats.CustomInboxPrefix; Options.AuthOptions does).
func InboxPrefix(identity string) string { return "_INBOX_" + identity }

// Permissions returns the permissions catalogue for o, derived from the
// streams and durables of the catalogue, one entry per identity in a fixed
// order. Services get the JetStream API calls that look (stream and
// consumer info) and that bind to their own durables (next message, ack),
// never create, update or delete; only IdentityMigrate holds $JS.API.>.
// Each subscribes to its own inboxes only (InboxPrefix).
func Permissions(o Options) []Permission {
	durables := Durables(o)
	all := StreamNames()
	return []Permission{
		// The gateway publishes verified Stripe events; webhook-health lists
		// every stream's consumers.
		perm(IdentityGateway, []string{wire.StripeEventsAll}, listAPI(all)),
		// identity also answers the operator's link commands (core NATS,
		// wire.OpsLinkCustomer) on reply subjects only the operator reads.
		perm(IdentityIdentity, contract("billing."),
			bindAPI(durables, o.identityConsumer(), IdentityCRMLinks(o.identityConsumer())), []string{wire.OpsLinkReplyPrefix + ">"}).
			subscribing(wire.OpsLinkCustomer),
		perm(IdentityCRM, contract("crm."), bindAPI(durables, ConsumerCRM)),
		perm(IdentitySupport, contract("support."), bindAPI(durables, ConsumerSupport)),
		perm(IdentityAlerts, bindAPI(durables, ConsumerAlerts, ConsumerAlertsCRMRetries)),
		// The projector's console and rebuild read every stream with
		// ordered consumers, list consumers and fetch dead letters. It
		// neither replays nor deletes them: its status API and console do
		// that on a second connection logged in as the operator
		// (OPS_NATS_USER), so replays come only from the operator identity.
		perm(IdentityProjector, bindAPI(durables, ConsumerProjector), orderedAPI(all), listAPI(all), msgGetAPI(all)),
		// The operator: its CLI (dlq list, show, and replay and discard
		// --direct, rebuild --direct, reconcile) and the projector's
		// dead-letter actions; it reads streams with ordered consumers, and
		// the doctor looks at every durable.
		perm(IdentityOperator, orderedAPI(all), listAPI(all), msgGetAPI(all), replaySubjects(), consumerInfo(durables), []string{wire.OpsLinkCustomer}).
			subscribing(wire.OpsLinkReplyPrefix + ">"),
		{Identity: IdentityMigrate, Publish: []string{jsAPI + ">"}, Subscribe: []string{InboxPrefix(IdentityMigrate) + ".>"}},
	}
}

// perm is identity's entry: what every service needs to Check the
// topology (lookAPI), then publish; it subscribes to its own inboxes.
func perm(identity string, publish ...[]string) Permission {
	p := Permission{Identity: identity, Publish: lookAPI(), Subscribe: []string{InboxPrefix(identity) + ".>"}}
	for _, l := range publish {
		p.Publish = append(p.Publish, l...)
	}
	return p
}

// lookAPI is account info and every stream's info.
func lookAPI() []string {
	out := []string{jsAPI + "INFO"}
	for _, s := range StreamNames() {
		out = append(out, jsAPI+"STREAM.INFO."+s)
	}
	return out
}

// bindAPI is what consuming the durables called names needs: their info,
// pulls, acks (both ack subject forms) and a dead letter per durable.
func bindAPI(durables []Durable, names ...string) []string {
	var out []string
	for _, d := range durables {
		if !slices.Contains(names, d.Name) {
			continue
		}
		sd := d.Stream + "." + d.Name
		out = append(out,
			jsAPI+"CONSUMER.INFO."+sd,
			jsAPI+"CONSUMER.MSG.NEXT."+sd,
			"$JS.ACK."+sd+".>",
			"$JS.ACK.*.*."+sd+".>",
			wire.DLQPrefix+d.Name,
		)
	}
	return out
}

// orderedAPI is what an ordered consumer (ephemeral, named by the client)
// on each of streams needs: create it, pull from it, delete it.
func orderedAPI(streams []string) []string {
	var out []string
	for _, s := range streams {
		out = append(out,
			jsAPI+"CONSUMER.CREATE."+s+".>",
			jsAPI+"CONSUMER.INFO."+s+".>",
			jsAPI+"CONSUMER.MSG.NEXT."+s+".>",
			jsAPI+"CONSUMER.DELETE."+s+".>",
		)
	}
	return out
}

// listAPI lists the consumers of each of streams.
func listAPI(streams []string) []string {
	var out []string
	for _, s := range streams {
		out = append(out, jsAPI+"CONSUMER.LIST."+s, jsAPI+"CONSUMER.NAMES."+s)
	}
	return out
}

// msgGetAPI fetches single messages (dead letters) from each of streams.
func msgGetAPI(streams []string) []string {
	var out []string
	for _, s := range streams {
		out = append(out, jsAPI+"STREAM.MSG.GET."+s)
	}
	return out
}

// replaySubjects is a dead letter's replay to its original subject (any
// event of the contract, any Stripe event) and its deletion from the DLQ.
func replaySubjects() []string {
	out := append([]string{wire.StripeEventsAll}, contract("billing.")...)
	out = append(out, contract("crm.")...)
	out = append(out, contract("support.")...)
	return append(out, jsAPI+"STREAM.MSG.DELETE."+StreamDLQ)
}

// subscribing adds subjects p may subscribe to besides its inboxes.
func (p Permission) subscribing(subjects ...string) Permission {
	p.Subscribe = append(p.Subscribe, subjects...)
	return p
}

// consumerInfo lets the operator (and the doctor it runs) look at every
// durable of the catalogue.
func consumerInfo(durables []Durable) []string {
	var out []string
	for _, d := range durables {
		s := jsAPI + "CONSUMER.INFO." + d.Stream + "." + d.Name
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// ConsumerNames lists the durable names of the catalogue for o, each once.
func ConsumerNames(o Options) []string {
	var out []string
	for _, d := range Durables(o) {
		if !slices.Contains(out, d.Name) {
			out = append(out, d.Name)
		}
	}
	return out
}

// PermissionFor returns the catalogue's entry for identity.
func PermissionFor(o Options, identity string) (Permission, error) {
	for _, p := range Permissions(o) {
		if p.Identity == identity {
			return p, nil
		}
	}
	return Permission{}, fmt.Errorf("natsbus: no NATS identity %q in the permissions catalogue", identity)
}
