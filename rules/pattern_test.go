package rules_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jetmesh/jetmesh/rules"
)

// TestMatch is the operator table: each case is a pattern, an event, and whether they
// match, following EventBridge's documented semantics.
func TestMatch(t *testing.T) {
	tests := []struct {
		name, pattern, event string
		want                 bool
	}{
		// exact values of every JSON type; arrays are OR
		{"string", `{"type":["orders.created"]}`, `{"type":"orders.created"}`, true},
		{"string other", `{"type":["orders.created"]}`, `{"type":"orders.updated"}`, false},
		{"string case sensitive", `{"s":["Alice"]}`, `{"s":"alice"}`, false},
		{"array is OR", `{"type":["a.b","c.d"]}`, `{"type":"c.d"}`, true},
		{"missing field", `{"type":["a"]}`, `{"other":"a"}`, false},
		{"number", `{"n":[3]}`, `{"n":3}`, true},
		{"3 equals 3.0", `{"n":[3]}`, `{"n":3.0}`, true},
		{"exponent form", `{"n":[300]}`, `{"n":3e2}`, true},
		{"number is not a string", `{"n":[3]}`, `{"n":"3"}`, false},
		{"string is not a number", `{"n":["3"]}`, `{"n":3}`, false},
		{"boolean", `{"b":[true]}`, `{"b":true}`, true},
		{"boolean false", `{"b":[true]}`, `{"b":false}`, false},
		{"null", `{"u":[null]}`, `{"u":null}`, true},
		{"null vs missing", `{"u":[null]}`, `{}`, false},
		{"empty string", `{"s":[""]}`, `{"s":""}`, true},
		{"empty string vs null", `{"s":[""]}`, `{"s":null}`, false},
		// EventBridge parity (issue 10): anything-but with lists of prefixes or suffixes
		{"anything-but prefix list", `{"s":[{"anything-but":{"prefix":["init","test"]}}]}`, `{"s":"testing"}`, false},
		{"anything-but prefix list other", `{"s":[{"anything-but":{"prefix":["init","test"]}}]}`, `{"s":"prod"}`, true},
		{"anything-but suffix list", `{"s":[{"anything-but":{"suffix":[".png",".jpg"]}}]}`, `{"s":"a.jpg"}`, false},
		{"anything-but suffix list other", `{"s":[{"anything-but":{"suffix":[".png",".jpg"]}}]}`, `{"s":"a.gif"}`, true},
		// keys with dots are paths, both ways
		{"dotted pattern key", `{"a.b":["x"]}`, `{"a":{"b":"x"}}`, true},
		{"dotted pattern key miss", `{"a.b":["x"]}`, `{"a":{"b":"y"}}`, false},
		{"dotted event key", `{"a":{"b":["x"]}}`, `{"a.b":"x"}`, true},
		{"dotted on both sides", `{"data.total.cents":[{"numeric":[">=",100]}]}`, `{"data":{"total.cents":150}}`, true},
		{"dotted event key and nested object", `{"a":{"b":["x"],"c":[1]}}`, `{"a.b":"x","a":{"c":1}}`, true},
		{"dotted pattern key beside nested", `{"a.b":["x"],"a":{"c":[1]}}`, `{"a":{"b":"x","c":1}}`, true},
		{"dotted key exists false", `{"a":{"b":[{"exists":false}]}}`, `{"a.b":"x"}`, false},
		// Unicode simple case folding, where the two cases differ in byte length
		{"equals-ignore-case long s", `{"s":[{"equals-ignore-case":"ſtop"}]}`, `{"s":"STOP"}`, true},
		{"equals-ignore-case Kelvin", `{"s":[{"equals-ignore-case":"kelvin"}]}`, `{"s":"KELVIN"}`, true},
		{"equals-ignore-case sharp s", `{"s":[{"equals-ignore-case":"ẞ"}]}`, `{"s":"ß"}`, true},
		{"prefix ignore-case long s", `{"s":[{"prefix":{"equals-ignore-case":"ſt"}}]}`, `{"s":"Stop"}`, true},
		{"prefix ignore-case Kelvin", `{"s":[{"prefix":{"equals-ignore-case":"Kel"}}]}`, `{"s":"kelvin"}`, true},
		{"prefix ignore-case shorter value", `{"s":[{"prefix":{"equals-ignore-case":"KK"}}]}`, `{"s":"kk"}`, true},
		{"suffix ignore-case sharp s", `{"s":[{"suffix":{"equals-ignore-case":"straẞe"}}]}`, `{"s":"Hauptstraße"}`, true},
		{"suffix ignore-case miss", `{"s":[{"suffix":{"equals-ignore-case":"ſx"}}]}`, `{"s":"ab"}`, false},
		{"anything-but equals-ignore-case Kelvin", `{"s":[{"anything-but":{"equals-ignore-case":["k"]}}]}`, `{"s":"K"}`, false},
		// nested objects
		{"nested", `{"data":{"state":["paid"]}}`, `{"data":{"state":"paid"}}`, true},
		{"nested miss", `{"data":{"state":["paid"]}}`, `{"data":{"state":"open"}}`, false},
		{"nested not object", `{"data":{"state":["paid"]}}`, `{"data":"paid"}`, false},
		{"fields AND", `{"type":["a.b"],"data":{"n":[1]}}`, `{"type":"a.b","data":{"n":2}}`, false},
		{"deep", `{"a":{"b":{"c":{"d":[1]}}}}`, `{"a":{"b":{"c":{"d":1}}}}`, true},
		// event arrays: any element
		{"event array any", `{"tags":["vip"]}`, `{"tags":["new","vip"]}`, true},
		{"event array none", `{"tags":["vip"]}`, `{"tags":["new"]}`, false},
		{"event array of objects", `{"items":{"sku":["B"]}}`, `{"items":[{"sku":"A"},{"sku":"B"}]}`, true},
		{"array of objects same element", `{"items":{"sku":["A"],"qty":[2]}}`, `{"items":[{"sku":"A","qty":1},{"sku":"B","qty":2}]}`, false},
		{"nested arrays", `{"m":[5]}`, `{"m":[[1,2],[5]]}`, true},
		{"empty event array", `{"tags":["vip"]}`, `{"tags":[]}`, false},
		// prefix / suffix / equals-ignore-case
		{"prefix", `{"type":[{"prefix":"orders."}]}`, `{"type":"orders.created"}`, true},
		{"prefix miss", `{"type":[{"prefix":"orders."}]}`, `{"type":"order.created"}`, false},
		{"prefix not on numbers", `{"n":[{"prefix":"1"}]}`, `{"n":12}`, false},
		{"prefix ignore case", `{"s":[{"prefix":{"equals-ignore-case":"EventB"}}]}`, `{"s":"eventbridge"}`, true},
		{"suffix", `{"f":[{"suffix":".png"}]}`, `{"f":"cat.png"}`, true},
		{"suffix miss", `{"f":[{"suffix":".png"}]}`, `{"f":"cat.PNG"}`, false},
		{"suffix ignore case", `{"f":[{"suffix":{"equals-ignore-case":".png"}}]}`, `{"f":"cat.PNG"}`, true},
		{"equals-ignore-case", `{"s":[{"equals-ignore-case":"alice"}]}`, `{"s":"ALICE"}`, true},
		{"equals-ignore-case miss", `{"s":[{"equals-ignore-case":"alice"}]}`, `{"s":"alicia"}`, false},
		// wildcard
		{"wildcard middle", `{"f":[{"wildcard":"dir/*.png"}]}`, `{"f":"dir/cat.png"}`, true},
		{"wildcard crosses separators", `{"f":[{"wildcard":"dir/*.png"}]}`, `{"f":"dir/a/b.png"}`, true},
		{"wildcard miss", `{"f":[{"wildcard":"dir/*.png"}]}`, `{"f":"dir/cat.jpg"}`, false},
		{"wildcard leading", `{"f":[{"wildcard":"*.png"}]}`, `{"f":"x.png"}`, true},
		{"wildcard trailing", `{"type":[{"wildcard":"orders.*"}]}`, `{"type":"orders.created.v2"}`, true},
		{"wildcard several", `{"f":[{"wildcard":"a*b*c"}]}`, `{"f":"a1b2b3c"}`, true},
		{"wildcard several miss", `{"f":[{"wildcard":"a*b*c"}]}`, `{"f":"a1c2b"}`, false},
		{"wildcard overlap at end", `{"f":[{"wildcard":"*ab"}]}`, `{"f":"ab"}`, true},
		{"wildcard no star", `{"f":[{"wildcard":"abc"}]}`, `{"f":"abc"}`, true},
		{"wildcard escaped star", `{"f":[{"wildcard":"a\\*b"}]}`, `{"f":"a*b"}`, true},
		{"wildcard escaped star literal", `{"f":[{"wildcard":"a\\*b"}]}`, `{"f":"axb"}`, false},
		{"wildcard escaped backslash", `{"f":[{"wildcard":"a\\\\*"}]}`, `{"f":"a\\zzz"}`, true},
		{"wildcard only star", `{"f":[{"wildcard":"*"}]}`, `{"f":""}`, true},
		// anything-but
		{"anything-but string", `{"s":[{"anything-but":"init"}]}`, `{"s":"running"}`, true},
		{"anything-but string same", `{"s":[{"anything-but":"init"}]}`, `{"s":"init"}`, false},
		{"anything-but missing field", `{"s":[{"anything-but":"init"}]}`, `{}`, false},
		{"anything-but number", `{"n":[{"anything-but":123}]}`, `{"n":124}`, true},
		{"anything-but number same", `{"n":[{"anything-but":123}]}`, `{"n":123.0}`, false},
		{"anything-but list", `{"s":[{"anything-but":["a","b"]}]}`, `{"s":"b"}`, false},
		{"anything-but list other", `{"s":[{"anything-but":["a","b"]}]}`, `{"s":"c"}`, true},
		{"anything-but prefix", `{"r":[{"anything-but":{"prefix":"us-"}}]}`, `{"r":"eu-west-1"}`, true},
		{"anything-but prefix hit", `{"r":[{"anything-but":{"prefix":"us-"}}]}`, `{"r":"us-east-1"}`, false},
		{"anything-but suffix", `{"f":[{"anything-but":{"suffix":".png"}}]}`, `{"f":"a.png"}`, false},
		{"anything-but ignore case", `{"s":[{"anything-but":{"equals-ignore-case":["INIT","x"]}}]}`, `{"s":"init"}`, false},
		{"anything-but ignore case other", `{"s":[{"anything-but":{"equals-ignore-case":"init"}}]}`, `{"s":"run"}`, true},
		{"anything-but wildcard", `{"p":[{"anything-but":{"wildcard":"*/lib/*"}}]}`, `{"p":"/usr/lib/x"}`, false},
		{"anything-but wildcard other", `{"p":[{"anything-but":{"wildcard":"*/lib/*"}}]}`, `{"p":"/usr/bin/x"}`, true},
		{"anything-but array event", `{"s":[{"anything-but":"a"}]}`, `{"s":["a","b"]}`, true},
		// numeric
		{"numeric gt", `{"n":[{"numeric":[">",0]}]}`, `{"n":0.5}`, true},
		{"numeric gt edge", `{"n":[{"numeric":[">",0]}]}`, `{"n":0}`, false},
		{"numeric range", `{"n":[{"numeric":[">",0,"<=",5]}]}`, `{"n":5}`, true},
		{"numeric range above", `{"n":[{"numeric":[">",0,"<=",5]}]}`, `{"n":5.0001}`, false},
		{"numeric ge", `{"n":[{"numeric":[">=",10]}]}`, `{"n":1e1}`, true},
		{"numeric lt", `{"n":[{"numeric":["<",-1]}]}`, `{"n":-1.5}`, true},
		{"numeric eq", `{"n":[{"numeric":["=",3]}]}`, `{"n":3.0}`, true},
		{"numeric eq miss", `{"n":[{"numeric":["=",3]}]}`, `{"n":3.1}`, false},
		{"numeric on string", `{"n":[{"numeric":[">",0]}]}`, `{"n":"5"}`, false},
		{"numeric array any", `{"n":[{"numeric":[">",10]}]}`, `{"n":[1,20]}`, true},
		// exists
		{"exists true", `{"p":[{"exists":true}]}`, `{"p":"x"}`, true},
		{"exists true null", `{"p":[{"exists":true}]}`, `{"p":null}`, true},
		{"exists true missing", `{"p":[{"exists":true}]}`, `{}`, false},
		{"exists true object is not a leaf", `{"p":[{"exists":true}]}`, `{"p":{"q":1}}`, false},
		{"exists false", `{"p":[{"exists":false}]}`, `{}`, true},
		{"exists false present", `{"p":[{"exists":false}]}`, `{"p":1}`, false},
		{"exists nested", `{"data":{"c":[{"exists":true}]}}`, `{"data":{"c":0}}`, true},
		{"exists false nested parent missing", `{"data":{"c":[{"exists":false}]}}`, `{"type":"x"}`, true},
		{"exists false nested present", `{"data":{"c":[{"exists":false}]}}`, `{"data":{"c":1}}`, false},
		{"exists in array of objects", `{"items":{"gift":[{"exists":true}]}}`, `{"items":[{"sku":"a"},{"gift":true}]}`, true},
		{"exists false in array of objects", `{"items":{"gift":[{"exists":false}]}}`, `{"items":[{"gift":true},{"sku":"b"}]}`, true},
		{"exists true empty array", `{"p":[{"exists":true}]}`, `{"p":[]}`, false},
		{"exists or value", `{"p":[{"exists":false},"x"]}`, `{"p":"x"}`, true},
		// cidr
		{"cidr v4", `{"ip":[{"cidr":"10.0.0.0/24"}]}`, `{"ip":"10.0.0.255"}`, true},
		{"cidr v4 miss", `{"ip":[{"cidr":"10.0.0.0/24"}]}`, `{"ip":"10.0.1.1"}`, false},
		{"cidr v6", `{"ip":[{"cidr":"2001:db8::/32"}]}`, `{"ip":"2001:db8::1"}`, true},
		{"cidr not an ip", `{"ip":[{"cidr":"10.0.0.0/8"}]}`, `{"ip":"ten"}`, false},
		{"cidr host bits", `{"ip":[{"cidr":"10.1.2.3/8"}]}`, `{"ip":"10.200.0.1"}`, true},
		// $or
		{"$or first", `{"$or":[{"a":[1]},{"b":[2]}]}`, `{"a":1}`, true},
		{"$or second", `{"$or":[{"a":[1]},{"b":[2]}]}`, `{"b":2}`, true},
		{"$or none", `{"$or":[{"a":[1]},{"b":[2]}]}`, `{"a":2,"b":1}`, false},
		{"$or with sibling", `{"type":["x.y"],"$or":[{"a":[1]},{"b":[2]}]}`, `{"type":"x.z","a":1}`, false},
		{"$or with sibling ok", `{"type":["x.y"],"$or":[{"a":[1]},{"b":[2]}]}`, `{"type":"x.y","b":2}`, true},
		{"$or nested", `{"data":{"$or":[{"c":[{"numeric":[">",5]}]},{"d":["z"]}]}}`, `{"data":{"c":6}}`, true},
		{"$or in $or", `{"$or":[{"a":[1]},{"$or":[{"b":[2]},{"c":[3]}]}]}`, `{"c":3}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := rules.Compile([]byte(tt.pattern))
			if err != nil {
				t.Fatalf("compile %s: %v", tt.pattern, err)
			}
			got, err := p.MatchJSON([]byte(tt.event))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("%s on %s = %v, want %v", tt.pattern, tt.event, got, tt.want)
			}
		})
	}
}

// TestCompileRefuses: every invalid pattern is refused with the place and the reason.
func TestCompileRefuses(t *testing.T) {
	tests := []struct {
		name, pattern, wantPtr, wantMsg string
	}{
		{"not JSON", `{"a":`, "", "not JSON"},
		{"not an object", `["a"]`, "", "must be a JSON object"},
		{"empty", `{}`, "", "is empty"},
		{"scalar leaf", `{"type":"orders.created"}`, "/type", "must be an array"},
		{"empty array", `{"type":[]}`, "/type", "empty array"},
		{"empty object", `{"data":{}}`, "/data", "empty object"},
		{"nested array", `{"a":[["x"]]}`, "/a/0", "arrays do not nest"},
		{"unknown operator", `{"a":[{"contains":"x"}]}`, "/a/0/contains", `unknown operator "contains"`},
		{"two operators", `{"a":[{"prefix":"x","suffix":"y"}]}`, "/a/0", "exactly one operator"},
		{"prefix not string", `{"a":[{"prefix":1}]}`, "/a/0/prefix", "prefix takes a string"},
		{"equals-ignore-case not string", `{"a":[{"equals-ignore-case":["x"]}]}`, "/a/0/equals-ignore-case", "takes a string"},
		{"wildcard consecutive stars", `{"a":[{"wildcard":"a**b"}]}`, "/a/0/wildcard", "consecutive *"},
		{"wildcard bad escape", `{"a":[{"wildcard":"a\\b"}]}`, "/a/0/wildcard", "backslash escapes only"},
		{"anything-but empty list", `{"a":[{"anything-but":[]}]}`, "/a/0/anything-but", "non-empty list"},
		{"anything-but mixed list", `{"a":[{"anything-but":["x",1]}]}`, "/a/0/anything-but", "only strings or only numbers"},
		{"anything-but bool", `{"a":[{"anything-but":true}]}`, "/a/0/anything-but", "anything-but takes"},
		{"anything-but unknown", `{"a":[{"anything-but":{"numeric":[">",1]}}]}`, "/a/0/anything-but/numeric", "does not take"},
		{"numeric odd length", `{"a":[{"numeric":[">",1,"<"]}]}`, "/a/0/numeric", "numeric takes"},
		{"numeric bad op", `{"a":[{"numeric":["!=",1]}]}`, "/a/0/numeric/0", "unknown numeric operator"},
		{"numeric not number", `{"a":[{"numeric":[">","1"]}]}`, "/a/0/numeric/1", "expected a number"},
		{"numeric empty range", `{"a":[{"numeric":[">",5,"<",1]}]}`, "/a/0/numeric", "range is empty"},
		{"numeric point exclusive", `{"a":[{"numeric":[">",5,"<=",5]}]}`, "/a/0/numeric", "range is empty"},
		{"numeric two lower", `{"a":[{"numeric":[">",1,">=",2]}]}`, "/a/0/numeric/2", "two lower bounds"},
		{"numeric = with range", `{"a":[{"numeric":["=",1,"<",2]}]}`, "/a/0/numeric/0", "stands alone"},
		{"numeric out of range", `{"a":[{"numeric":[">",6e9]}]}`, "/a/0/numeric/1", "outside the numeric range"},
		{"exists not bool", `{"a":[{"exists":"yes"}]}`, "/a/0/exists", "true or false"},
		{"cidr invalid", `{"a":[{"cidr":"10.0.0.0/33"}]}`, "/a/0/cidr", "not a CIDR block"},
		{"$or not array", `{"$or":{"a":[1]}}`, "/$or", "non-empty array"},
		{"$or empty", `{"$or":[]}`, "/$or", "non-empty array"},
		{"$or element not object", `{"$or":[{"a":[1]},"b"]}`, "/$or/1", "non-empty pattern object"},
		{"error deep inside", `{"data":{"items":{"qty":[{"numeric":[">"]}]}}}`, "/data/items/qty/0/numeric", "numeric takes"},
		{"slash in key escaped", `{"a/b":"x"}`, "/a~1b", "must be an array"},
		{"anything-but empty prefix", `{"a":[{"anything-but":{"prefix":""}}]}`, "/a/0/anything-but/prefix", "non-empty string"},
		{"anything-but empty suffix", `{"a":[{"anything-but":{"suffix":""}}]}`, "/a/0/anything-but/suffix", "non-empty string"},
		{"anything-but empty prefix in a list", `{"a":[{"anything-but":{"prefix":["x",""]}}]}`, "/a/0/anything-but/prefix/1", "non-empty string"},
		{"anything-but prefix list of numbers", `{"a":[{"anything-but":{"prefix":[1]}}]}`, "/a/0/anything-but/prefix/0", "takes strings"},
		{"dotted key twice", `{"a.b":["x"],"a":{"b":["y"]}}`, "/a.b", "given twice"},
		{"dotted key under a value", `{"a":["x"],"a.b":["y"]}`, "/a.b", "both as values and as an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rules.Compile([]byte(tt.pattern))
			var pe *rules.PatternError
			if !errors.As(err, &pe) || !errors.Is(err, rules.ErrInvalidPattern) {
				t.Fatalf("err = %v, want a *PatternError", err)
			}
			if pe.Pointer != tt.wantPtr || !strings.Contains(pe.Msg, tt.wantMsg) {
				t.Errorf("got %q at %q, want %q at %q", pe.Msg, pe.Pointer, tt.wantMsg, tt.wantPtr)
			}
		})
	}
}

func TestMatchJSONRefusesNonObjects(t *testing.T) {
	p := rules.MustCompile(`{"a":[1]}`)
	for _, ev := range []string{`[1]`, `"x"`, `{"a":`, "\xff"} {
		if _, err := p.MatchJSON([]byte(ev)); !errors.Is(err, rules.ErrInvalidEvent) {
			t.Errorf("%q: err = %v", ev, err)
		}
	}
}

func TestFilterSubjects(t *testing.T) {
	tests := []struct {
		pattern string
		want    string
		never   bool
	}{
		{`{"type":["orders.created"]}`, "evt.orders.created", false},
		{`{"type":["orders.created","orders.updated"]}`, "evt.orders.created evt.orders.updated", false},
		{`{"type":[{"prefix":"orders."}]}`, "evt.orders.>", false},
		{`{"type":[{"prefix":"orders.cre"}]}`, "evt.orders.>", false},
		{`{"type":[{"prefix":"orders"}]}`, "evt.>", false},
		{`{"type":[{"prefix":"billing.invoice."},"billing.invoice.paid"]}`, "evt.billing.invoice.>", false},
		{`{"type":[{"wildcard":"orders.*"}]}`, "evt.orders.>", false},
		{`{"type":[{"wildcard":"*.created"}]}`, "evt.>", false},
		{`{"type":[{"equals-ignore-case":"Orders.Created"}]}`, "evt.orders.created", false},
		{`{"type":[{"prefix":{"equals-ignore-case":"ORDERS."}}]}`, "evt.orders.>", false},
		{`{"type":[{"anything-but":"orders.created"}]}`, "evt.>", false},
		{`{"type":[{"suffix":".created"}]}`, "evt.>", false},
		{`{"type":["orders.created",{"suffix":".x"}]}`, "evt.>", false},
		{`{"data":{"amount":[1]}}`, "evt.>", false},
		{`{"$or":[{"type":["a.b"]},{"type":["c.d"]}]}`, "evt.a.b evt.c.d", false},
		{`{"$or":[{"type":["a.b"]},{"data":{"x":[1]}}]}`, "evt.>", false},
		{`{"type":["a.b"],"$or":[{"type":["c.d"]},{"x":[1]}]}`, "evt.a.b", false},
		{`{"type":["Orders.Created"]}`, "evt.>", true},
		{`{"type":[5]}`, "evt.>", true},
	}
	for _, tt := range tests {
		p := rules.MustCompile(tt.pattern)
		if got := strings.Join(p.FilterSubjects(), " "); got != tt.want {
			t.Errorf("%s: subjects %q, want %q", tt.pattern, got, tt.want)
		}
		if p.MatchesNoType() != tt.never {
			t.Errorf("%s: MatchesNoType = %v", tt.pattern, !tt.never)
		}
	}
}

func TestSubjectsSufficeAndUsesKey(t *testing.T) {
	tests := []struct {
		pattern  string
		suffice  bool
		usesData bool
	}{
		{`{"type":["orders.created"]}`, true, false},
		{`{"type":["orders.created","orders.updated"]}`, true, false},
		{`{"type":["Orders.Created"]}`, false, false},
		{`{"type":[{"prefix":"orders."}]}`, false, false},
		{`{"type":["orders.created"],"source":["/shop"]}`, false, false},
		{`{"type":["orders.created"],"data":{"total":[{"numeric":[">",100]}]}}`, false, true},
		{`{"$or":[{"type":["a.b"]},{"data":{"x":[1]}}]}`, false, true},
		{`{"data":{"x":[{"exists":false}]}}`, false, true},
	}
	for _, tt := range tests {
		p := rules.MustCompile(tt.pattern)
		if p.SubjectsSuffice() != tt.suffice {
			t.Errorf("%s: SubjectsSuffice = %v", tt.pattern, !tt.suffice)
		}
		if p.UsesKey("data") != tt.usesData {
			t.Errorf("%s: UsesKey(data) = %v", tt.pattern, !tt.usesData)
		}
	}
}
