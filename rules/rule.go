package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jetmesh/jetmesh/internal/duration"
)

// Rule routes the events its pattern matches to a service. Rules are written by users (in
// YAML or JSON files), stored in the mesh-rules bucket, and each becomes one durable
// consumer on the EVENTS stream. A Rule value is not safe for concurrent mutation.
type Rule struct {
	// Name identifies the rule (and names its consumer): lowercase letters, digits, - and _.
	Name string `json:"name"`
	// Description says why the rule exists, for the people who read `rules ls`.
	Description string `json:"description,omitempty"`
	// Pattern is an EventBridge event pattern over the CloudEvent in structured form
	// ({"id", "source", "type", "subject", "time", "data": {...}}); see docs/patterns.md.
	Pattern json.RawMessage `json:"pattern"`
	// Target is where matching events are delivered.
	Target Target `json:"target"`
	// Delivery is how they are delivered: attempts, backoff, timeout, concurrency, order.
	Delivery Delivery `json:"delivery"`
	// DeadLetter sends events that exhaust their attempts (or are refused) to the DLQ
	// stream; when false they are dropped after the last attempt. Default true.
	DeadLetter *bool `json:"deadLetter,omitempty"`
	// StartTime, when set, delivers events stored since then (a replay); by default a new
	// rule receives only events published after it was created.
	StartTime *time.Time `json:"startTime,omitempty"`
	// SkipUndelivered lets a startTime change move the rule's consumer past events stored
	// but not yet delivered, which are then never delivered to this rule. `rules apply
	// --force` sets it on the rules whose change would skip events; without it the server
	// never skips: a later startTime leaves the consumer where it is.
	SkipUndelivered bool `json:"skipUndelivered,omitempty"`
}

// Target names the service (its sidecar) and the path its handler listens on.
type Target struct {
	// Service is the name sidecars run with (--service); every replica shares the rule.
	Service string `json:"service"`
	// Path is appended to the sidecar's --handler URL. Default "/".
	Path string `json:"path,omitempty"`
}

// Delivery is a rule's delivery policy. Every field is per rule, not per process.
type Delivery struct {
	// MaxAttempts is how many times an event is tried before it is dead-lettered. Default 5.
	MaxAttempts int `json:"maxAttempts,omitempty"`
	// Backoff spaces the retries.
	Backoff Backoff `json:"backoff"`
	// Timeout bounds one delivery attempt (one HTTP request). Default 30s.
	Timeout duration.Duration `json:"timeout,omitempty"`
	// MaxConcurrency bounds the events in flight for this rule across all replicas of the
	// service (the consumer's max ack pending). Default 16; 1 when ordered (with batch,
	// batch.maxEvents: one batch at a time). For an orderBy rule, each partition delivers
	// at most its share of it at once.
	MaxConcurrency int `json:"maxConcurrency,omitempty"`
	// Ordered delivers strictly in stream order, one event at a time.
	Ordered bool `json:"ordered,omitempty"`
	// RateLimit caps deliveries across every replica of the service: "500/s", "30000/m",
	// "1000/h". Empty: no cap.
	RateLimit string `json:"rateLimit,omitempty"`
	// Batch delivers events in CloudEvents batches (application/cloudevents-batch+json):
	// up to MaxEvents a request, sent once that many are ready or MaxWait has passed.
	Batch *Batch `json:"batch,omitempty"`
	// OrderBy delivers the events that share a key in stream order, one at a time, and
	// events of different keys in parallel: a context attribute ("partitionkey", the
	// CloudEvents partitioning extension) or a dotted path into the data
	// ("data.customerId"). Events without the key are delivered as on an unordered rule.
	OrderBy string `json:"orderBy,omitempty"`
	// Partitions splits an orderBy rule's keys among this many consumers, each delivered
	// by one replica of the service at a time: the most replicas that share the work.
	// Default 4.
	Partitions int `json:"partitions,omitempty"`
}

// Batch is a rule's batch delivery.
type Batch struct {
	MaxEvents int               `json:"maxEvents"`
	MaxWait   duration.Duration `json:"maxWait,omitempty"`
}

// Limits of batch delivery.
const (
	MaxBatchEvents      = 1000
	DefaultBatchMaxWait = 20 * time.Millisecond
	maxBatchWait        = 10 * time.Second
	DefaultPartitions   = 4
	MaxPartitions       = 64
)

// PartitionCount is how many partitions deliver the rule: 1 without orderBy.
func (d Delivery) PartitionCount() int {
	switch {
	case d.OrderBy == "":
		return 1
	case d.Partitions == 0:
		return DefaultPartitions
	}
	return d.Partitions
}

// Rate is RateLimit in deliveries per second; 0 without a limit.
func (d Delivery) Rate() (float64, error) {
	if d.RateLimit == "" {
		return 0, nil
	}
	n, per, ok := strings.Cut(strings.ReplaceAll(d.RateLimit, " ", ""), "/")
	count, err := strconv.ParseFloat(n, 64)
	seconds := map[string]float64{"s": 1, "m": 60, "min": 60, "h": 3600}[per]
	if !ok || err != nil || seconds == 0 || count <= 0 || math.IsInf(count, 0) || math.IsNaN(count) {
		return 0, fmt.Errorf("delivery.rateLimit %q must be a positive number per s, m or h, like \"500/s\" or \"1000/m\"", d.RateLimit)
	}
	return count / seconds, nil
}

// Backoff is exponential: initial, times multiplier after each failure, capped at max.
type Backoff struct {
	Initial    duration.Duration `json:"initial,omitempty"`
	Max        duration.Duration `json:"max,omitempty"`
	Multiplier float64           `json:"multiplier,omitempty"`
}

// Defaults of a rule's delivery policy.
const (
	DefaultMaxAttempts    = 5
	DefaultTimeout        = 30 * time.Second
	DefaultMaxConcurrency = 16
	DefaultBackoffInitial = time.Second
	DefaultBackoffMax     = time.Minute
	DefaultBackoffFactor  = 2.0
)

// Limits a rule must stay within.
const (
	maxAttemptsLimit    = 1000
	maxConcurrencyLimit = 10000
	maxTimeout          = 15 * time.Minute
	maxBackoff          = 24 * time.Hour
	maxPatternBytes     = 16 << 10
)

// SetDefaults fills every field left empty with its default.
func (r *Rule) SetDefaults() {
	d := &r.Delivery
	if d.MaxAttempts == 0 {
		d.MaxAttempts = DefaultMaxAttempts
	}
	if d.Timeout == 0 {
		d.Timeout = duration.Duration(DefaultTimeout)
	}
	if d.Batch != nil && d.Batch.MaxWait == 0 {
		d.Batch.MaxWait = duration.Duration(DefaultBatchMaxWait)
	}
	if d.MaxConcurrency == 0 {
		d.MaxConcurrency = DefaultMaxConcurrency
		switch {
		case d.Ordered && d.Batch != nil:
			d.MaxConcurrency = d.Batch.MaxEvents // one batch at a time, in order
		case d.Ordered:
			d.MaxConcurrency = 1
		case d.Batch != nil && d.Batch.MaxEvents > 0:
			// Room for a batch being sent while the next one fills.
			d.MaxConcurrency = min(maxConcurrencyLimit, max(d.MaxConcurrency, 2*d.Batch.MaxEvents))
		}
	}
	if d.OrderBy != "" && d.Partitions == 0 {
		d.Partitions = DefaultPartitions
	}
	if d.Backoff.Initial == 0 {
		d.Backoff.Initial = duration.Duration(DefaultBackoffInitial)
	}
	if d.Backoff.Max == 0 {
		d.Backoff.Max = duration.Duration(max(DefaultBackoffMax, d.Backoff.Initial.Std()))
	}
	if d.Backoff.Multiplier == 0 {
		d.Backoff.Multiplier = DefaultBackoffFactor
	}
	if r.Target.Path == "" {
		r.Target.Path = "/"
	}
	if r.DeadLetter == nil {
		yes := true
		r.DeadLetter = &yes
	}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// MaxServiceNameLen bounds a service name: a DNS label's length, so a name fits wherever
// deployments carry it (Kubernetes names, hostnames).
const MaxServiceNameLen = 63

var serviceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// ValidateServiceName checks the name a rule targets (target.service) and a sidecar runs
// with (--service): the one place that rule lives.
func ValidateServiceName(name string) error {
	if len(name) > MaxServiceNameLen || !serviceRE.MatchString(name) {
		return fmt.Errorf("%q must be 1-%d characters of a-z, 0-9, - and _, starting with a letter or digit (the name sidecars run with)", name, MaxServiceNameLen)
	}
	return nil
}

// Validate names every problem of a rule (after SetDefaults), joined in one error that
// wraps ErrInvalidRule.
func (r *Rule) Validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if !nameRE.MatchString(r.Name) {
		add("name %q must be 1-64 characters of a-z, 0-9, - and _, starting with a letter or digit", r.Name)
	}
	if _, err := r.Compile(); err != nil {
		add("%v", err)
	}
	if err := ValidateServiceName(r.Target.Service); err != nil {
		add("target.service: %v", err)
	}
	if !strings.HasPrefix(r.Target.Path, "/") || strings.ContainsAny(r.Target.Path, " \t\r\n?#") {
		add("target.path %q must start with / and hold no spaces, query or fragment", r.Target.Path)
	}
	d := r.Delivery
	if d.MaxAttempts < 1 || d.MaxAttempts > maxAttemptsLimit {
		add("delivery.maxAttempts must be between 1 and %d, got %d", maxAttemptsLimit, d.MaxAttempts)
	}
	if d.Timeout <= 0 || d.Timeout.Std() > maxTimeout {
		add("delivery.timeout must be positive and at most %s, got %s", maxTimeout, d.Timeout)
	}
	if d.MaxConcurrency < 1 || d.MaxConcurrency > maxConcurrencyLimit {
		add("delivery.maxConcurrency must be between 1 and %d, got %d", maxConcurrencyLimit, d.MaxConcurrency)
	}
	if _, err := d.Rate(); err != nil {
		add("%v", err)
	}
	if b := d.Batch; b != nil {
		if b.MaxEvents < 1 || b.MaxEvents > MaxBatchEvents {
			add("delivery.batch.maxEvents must be between 1 and %d, got %d", MaxBatchEvents, b.MaxEvents)
		} else if d.MaxConcurrency < b.MaxEvents {
			add("delivery.maxConcurrency (%d) counts events: it must be at least batch.maxEvents (%d)", d.MaxConcurrency, b.MaxEvents)
		}
		if b.MaxWait < 0 || b.MaxWait.Std() > maxBatchWait {
			add("delivery.batch.maxWait must be between 0 and %s, got %s", maxBatchWait, b.MaxWait)
		}
		if d.Ordered && d.MaxConcurrency != b.MaxEvents {
			add("delivery.ordered with batch sends one batch at a time: leave maxConcurrency out or set it to batch.maxEvents (%d), got %d", b.MaxEvents, d.MaxConcurrency)
		}
	}
	if d.OrderBy != "" {
		if _, err := ParseKeyPath(d.OrderBy); err != nil {
			add("%v", err)
		}
		if d.Ordered {
			add("delivery.orderBy and ordered exclude each other: ordered keeps one order for all events, orderBy one per key")
		}
		if d.Batch != nil {
			add("delivery.batch with orderBy is not supported yet: a partly failed batch would break the order of its keys")
		}
		if d.Partitions < 1 || d.Partitions > MaxPartitions {
			add("delivery.partitions must be between 1 and %d, got %d", MaxPartitions, d.Partitions)
		}
	} else if d.Partitions != 0 {
		add("delivery.partitions applies to orderBy rules only")
	}
	if d.Ordered && d.Batch == nil && d.MaxConcurrency != 1 {
		add("delivery.ordered delivers one event at a time: leave maxConcurrency out or set it to 1, got %d", d.MaxConcurrency)
	}
	b := d.Backoff
	if b.Initial <= 0 || b.Initial.Std() > maxBackoff {
		add("delivery.backoff.initial must be positive and at most %s, got %s", maxBackoff, b.Initial)
	}
	if b.Max < b.Initial || b.Max.Std() > maxBackoff {
		add("delivery.backoff.max (%s) must be at least backoff.initial (%s) and at most %s", b.Max, b.Initial, maxBackoff)
	}
	if b.Multiplier < 1 || b.Multiplier > 10 {
		add("delivery.backoff.multiplier must be between 1 and 10, got %g", b.Multiplier)
	}
	if len(problems) == 0 {
		return nil
	}
	name := r.Name
	if name == "" {
		name = "(no name)"
	}
	return fmt.Errorf("%w %s: %s", ErrInvalidRule, name, strings.Join(problems, "; "))
}

// Compile compiles the rule's pattern, refusing a missing, oversized or never-matching one.
func (r *Rule) Compile() (*Pattern, error) {
	if len(r.Pattern) == 0 || string(r.Pattern) == "null" {
		return nil, errors.New("pattern is required: say which events the rule wants, e.g. {\"type\": [\"orders.created\"]}")
	}
	if len(r.Pattern) > maxPatternBytes {
		return nil, fmt.Errorf("pattern is %d bytes, over the limit of %d", len(r.Pattern), maxPatternBytes)
	}
	p, err := Compile(r.Pattern)
	if err != nil {
		return nil, err
	}
	if p.MatchesNoType() {
		return nil, errors.New(`pattern can never match: no valid event type fits its "type" (types are lowercase dot-separated tokens)`)
	}
	return p, nil
}

// ConsumerName is the durable consumer of a rule on EVENTS.
func (r *Rule) ConsumerName() string { return ConsumerName(r.Name) }

// ConsumerName is the durable consumer of the rule named name.
func ConsumerName(name string) string { return "rule-" + name }

// ConsumerNames are all the rule's consumers: its own, and for an orderBy rule one per
// further partition (see PartitionConsumerName), partition i at index i.
func (r *Rule) ConsumerNames() []string {
	names := []string{r.ConsumerName()}
	for i := 1; i < r.Delivery.PartitionCount(); i++ {
		names = append(names, PartitionConsumerName(r.Name, i))
	}
	return names
}

// PartitionConsumerName is the consumer of partition i (≥ 1) of an orderBy rule;
// partition 0 is the rule's own consumer. "~" is outside rule names, so no rule's
// consumer can take the name.
func PartitionConsumerName(name string, i int) string {
	return ConsumerName(name) + "~" + strconv.Itoa(i)
}

// DeadLetters reports whether exhausted events go to the DLQ.
func (r *Rule) DeadLetters() bool { return r.DeadLetter == nil || *r.DeadLetter }
