package auth

import (
	"slices"

	"github.com/jetmesh/jetmesh/bus"
	"github.com/jetmesh/jetmesh/dlq"
	"github.com/jetmesh/jetmesh/rules"
	"github.com/nats-io/jwt/v2"
)

// InboxPrefix is a principal's own reply subject prefix: _INBOX.<name>. Every jetmesh
// client with credentials uses it (nats.CustomInboxPrefix), and a principal may
// subscribe to nothing else, so no one reads another principal's replies.
func InboxPrefix(name string) string { return "_INBOX." + name }

// IngressSubject is where a principal's publish requests go: jetmesh.v1.events.<name>.
// The subject is the proof of who sent a request: only that principal may publish to it.
func IngressSubject(name string) string { return bus.IngressSubject + "." + name }

// Permissions are the NATS permissions of a principal, given the rules in force (a
// sidecar reaches the consumers of its service's rules; the others are denied the rule
// consumers, which they could otherwise drain or rewrite).
func Permissions(p *Principal, rs []rules.Rule) jwt.Permissions {
	var perm jwt.Permissions
	inbox := InboxPrefix(p.Name) + ".>"
	switch p.Role {
	case RoleAdmin:
		perm.Pub.Allow.Add(">")
		perm.Sub.Allow.Add(">")
		return perm
	case RolePublisher:
		perm.Pub.Allow.Add(IngressSubject(p.Name))
	case RoleSidecar:
		perm.Pub.Allow.Add(IngressSubject(p.Name))
		perm.Pub.Allow.Add(readBucket(bus.RulesBucket)...)
		// Its own heartbeats, reading the others' (a rate-limited rule is shared out among
		// the replicas delivering it), and notes of the events its rules retry.
		perm.Pub.Allow.Add(readBucket(bus.PresenceBucket)...)
		perm.Pub.Allow.Add(
			"$KV."+bus.PresenceBucket+"."+SidecarPresencePrefix(p.Service)+">",
			"$JS.API.STREAM.INFO.KV_"+bus.RetriesBucket,
		)
		for _, r := range rs {
			if r.Target.Service != p.Service {
				continue
			}
			for _, c := range r.ConsumerNames() {
				perm.Pub.Allow.Add(
					"$JS.API.CONSUMER.INFO."+bus.EventsStream+"."+c,
					"$JS.API.CONSUMER.MSG.NEXT."+bus.EventsStream+"."+c,
					// Both forms of ack subject: $JS.ACK.<stream>.<consumer>... and the v2 form
					// $JS.ACK.<domain>.<account hash>.<stream>.<consumer>...
					"$JS.ACK."+bus.EventsStream+"."+c+".>",
					"$JS.ACK.*.*."+bus.EventsStream+"."+c+".>",
				)
				if r.Delivery.OrderBy != "" {
					// Taking over a partition rewinds it to its ack floor; handing it over unpins it.
					perm.Pub.Allow.Add(
						"$JS.API.CONSUMER.RESET."+bus.EventsStream+"."+c,
						"$JS.API.CONSUMER.UNPIN."+bus.EventsStream+"."+c,
					)
				}
			}
			perm.Pub.Allow.Add(
				// Delivery failures of its own rules only.
				dlq.RuleSubject(r.Name)+".*",
				"$KV."+bus.RetriesBucket+"."+r.Name+".>",
			)
		}
	case RoleViewer:
		perm.Pub.Allow.Add(
			"$JS.API.INFO",
			"$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST",
			"$JS.API.STREAM.INFO.*", "$JS.API.STREAM.MSG.GET.*",
			"$JS.API.DIRECT.GET.>",
			"$JS.API.CONSUMER.NAMES.*", "$JS.API.CONSUMER.LIST.*", "$JS.API.CONSUMER.INFO.*.*",
			// Readers (tail, dlq ls, KV listings) are ephemeral ordered consumers.
			"$JS.API.CONSUMER.CREATE.>", "$JS.API.CONSUMER.MSG.NEXT.*.*", "$JS.API.CONSUMER.DELETE.*.*",
			"$JS.FC.>",
		)
		perm.Pub.Deny.Add("$JS.API.CONSUMER.DURABLE.CREATE.>")
		perm.Pub.Deny.Add(denyBucket(bus.PrincipalsBucket)...)
		for _, r := range rs {
			for _, c := range r.ConsumerNames() {
				perm.Pub.Deny.Add(
					"$JS.API.CONSUMER.CREATE."+bus.EventsStream+"."+c,
					"$JS.API.CONSUMER.CREATE."+bus.EventsStream+"."+c+".>",
					"$JS.API.CONSUMER.MSG.NEXT."+bus.EventsStream+"."+c,
					"$JS.API.CONSUMER.DELETE."+bus.EventsStream+"."+c,
				)
			}
		}
	}
	perm.Sub.Allow.Add(inbox)
	slices.Sort(perm.Pub.Allow)
	slices.Sort(perm.Pub.Deny)
	return perm
}

// SidecarPresencePrefix is the start of the presence keys of a service's sidecars:
// sidecar.<service>.<instance>.
func SidecarPresencePrefix(service string) string { return "sidecar." + service + "." }

// readBucket is what reading and watching a KV bucket takes: its stream's info, direct
// gets of its keys, and an ordered consumer (with flow control) for the watch.
func readBucket(bucket string) []string {
	s := "KV_" + bucket
	return []string{
		"$JS.API.STREAM.INFO." + s,
		"$JS.API.DIRECT.GET." + s + ".>",
		"$JS.API.CONSUMER.CREATE." + s + ".>",
		"$JS.FC." + s + ".>",
	}
}

func denyBucket(bucket string) []string {
	s := "KV_" + bucket
	return []string{
		"$JS.API.DIRECT.GET." + s + ".>", "$JS.API.DIRECT.GET." + s,
		"$JS.API.STREAM.MSG.GET." + s,
		"$JS.API.CONSUMER.CREATE." + s + ".>", "$JS.API.CONSUMER.CREATE." + s,
	}
}
