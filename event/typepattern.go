package event

import (
	"fmt"
	"strings"
)

// ValidateTypePattern checks a type pattern, the way NATS subjects name types: type tokens,
// '*' for any one token, '>' as the last token for one or more ("orders.created",
// "orders.*", "orders.>", ">").
func ValidateTypePattern(p string) error {
	tokens := strings.Split(p, ".")
	for i, tok := range tokens {
		switch {
		case tok == "*":
		case tok == ">":
			if i != len(tokens)-1 {
				return fmt.Errorf("type pattern %q: '>' must be the last token", p)
			}
		default:
			if ValidateType(tok) != nil {
				return fmt.Errorf("type pattern %q: token %q must be [a-z0-9_-]+, '*' or a final '>'", p, tok)
			}
		}
	}
	return nil
}

// MatchTypePattern reports whether type t matches a valid type pattern.
func MatchTypePattern(pattern, t string) bool {
	for {
		pt, prest, pmore := strings.Cut(pattern, ".")
		tt, trest, tmore := strings.Cut(t, ".")
		switch {
		case pt == ">":
			return true
		case pt != "*" && pt != tt:
			return false
		case !pmore || !tmore:
			return pmore == tmore
		}
		pattern, t = prest, trest
	}
}
