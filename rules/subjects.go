package rules

import (
	"sort"
	"strings"

	"github.com/jetmesh/jetmesh/event"
)

// allEvents is the filter that takes every event.
const allEvents = event.SubjectPrefix + ">"

// FilterSubjects returns the narrowest JetStream filter subjects that still receive every
// event the pattern can match, derived from its "type" field (and from "type" inside a
// top-level $or): an exact type → evt.orders.created, a prefix or wildcard ending in
// "orders." → evt.orders.>, several → several; anything else → evt.>. The subjects never
// overlap. The full pattern is still evaluated before delivery; these only spare the
// consumer the events that cannot match.
func (p *Pattern) FilterSubjects() []string {
	subjects, constrained := typeSubjects(p.root)
	if !constrained || len(subjects) == 0 {
		// Unconstrained, or no stored event can match (a type that is not a valid type):
		// the latter still gets a filter, and the pattern refuses everything.
		return []string{allEvents}
	}
	return normalizeSubjects(subjects)
}

// MatchesNoType reports whether the pattern's type constraint admits no valid event type
// at all, so the rule can never fire (for example "type": ["Orders.Created"]).
func (p *Pattern) MatchesNoType() bool {
	subjects, constrained := typeSubjects(p.root)
	return constrained && len(subjects) == 0
}

// typeSubjects derives the subjects an object pattern's type constraint allows; constrained
// is false when the type is not narrowed at all.
func typeSubjects(o *objPattern) (subjects []string, constrained bool) {
	for _, f := range o.fields {
		if f.key != "type" || f.obj != nil {
			continue
		}
		var out []string
		for _, m := range f.matchers {
			s, ok := matcherSubjects(m)
			if !ok {
				return nil, false
			}
			out = append(out, s...)
		}
		return out, true
	}
	// Type constrained only inside $or: every alternative must narrow it. The event must
	// satisfy every $or group, so any one group that narrows the type is enough.
	var best []string
	found := false
	for _, group := range o.ors {
		var union []string
		ok := true
		for _, alt := range group {
			s, c := typeSubjects(alt)
			if !c {
				ok = false
				break
			}
			union = append(union, s...)
		}
		if ok && (!found || len(union) < len(best)) {
			best, found = union, true
		}
	}
	return best, found
}

// matcherSubjects maps one matcher on "type" to subjects; ok false means it cannot narrow.
func matcherSubjects(m matcher) (subjects []string, ok bool) {
	switch x := m.(type) {
	case exactString:
		return exactTypeSubject(string(x)), true
	case equalsIgnoreCase:
		if !isASCII(string(x)) {
			return nil, false // Unicode case folding: do not guess
		}
		return exactTypeSubject(strings.ToLower(string(x))), true
	case affix:
		if x.suffix {
			return nil, false
		}
		s := x.s
		if x.ignoreCase {
			if !isASCII(s) {
				return nil, false
			}
			s = strings.ToLower(s)
		}
		return prefixSubjects(s)
	case wildcard:
		if x.lead {
			return nil, false
		}
		if len(x.parts) == 1 && !x.trail {
			return exactTypeSubject(x.parts[0]), true
		}
		return prefixSubjects(x.parts[0])
	case exactNumber, exactBool, exactNull:
		return nil, true // a type is a string: never matches
	}
	return nil, false
}

func exactTypeSubject(t string) []string {
	if event.ValidateType(t) != nil {
		return nil
	}
	return []string{event.SubjectPrefix + t}
}

// prefixSubjects covers every type starting with s: the whole tokens before its last dot
// become a subject prefix; a prefix inside the first token cannot narrow.
func prefixSubjects(s string) ([]string, bool) {
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return nil, false
	}
	tokens := s[:i]
	if event.ValidateType(tokens) != nil {
		return nil, true // no valid type starts with it
	}
	return []string{event.SubjectPrefix + tokens + ".>"}, true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// normalizeSubjects sorts, dedupes and drops subjects another one covers, because
// JetStream refuses overlapping filters on one consumer.
func normalizeSubjects(subjects []string) []string {
	sort.Strings(subjects)
	var out []string
	for _, s := range subjects {
		covered := false
		for _, o := range subjects {
			if o != s && strings.HasSuffix(o, ".>") && strings.HasPrefix(s, strings.TrimSuffix(o, ">")) {
				covered = true
				break
			}
		}
		if !covered && (len(out) == 0 || out[len(out)-1] != s) {
			out = append(out, s)
		}
	}
	return out
}

// SubjectsSuffice reports whether the filter subjects alone decide the pattern: it only
// lists exact types, so every event its consumer receives matches and the deliverer can
// skip evaluating it.
func (p *Pattern) SubjectsSuffice() bool {
	if len(p.root.ors) > 0 || len(p.root.fields) != 1 {
		return false
	}
	f := p.root.fields[0]
	if f.key != "type" || f.obj != nil {
		return false
	}
	for _, m := range f.matchers {
		s, ok := m.(exactString)
		if !ok || event.ValidateType(string(s)) != nil {
			return false
		}
	}
	return true
}

// UsesKey reports whether the pattern looks at a top-level key of the event (also inside
// $or), so a caller can skip decoding what the pattern never reads, such as "data".
func (p *Pattern) UsesKey(key string) bool { return p.root.usesKey(key) }

func (o *objPattern) usesKey(key string) bool {
	for _, f := range o.fields {
		if f.key == key {
			return true
		}
	}
	for _, group := range o.ors {
		for _, alt := range group {
			if alt.usesKey(key) {
				return true
			}
		}
	}
	return false
}
