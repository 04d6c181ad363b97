package dlq

import (
	"slices"
	"testing"
)

func TestFilterSubjects(t *testing.T) {
	for _, tt := range []struct {
		f    Filter
		want []string
	}{
		{Filter{}, []string{"dlq.>"}},
		{Filter{Rule: "billing"}, []string{"dlq.rule.billing", "dlq.rule.billing.>"}},
		{Filter{Rule: "billing", Reasons: []string{ReasonDeliveryFailed}}, []string{"dlq.rule.billing", "dlq.rule.billing.delivery_failed"}},
		{Filter{Reasons: []string{ReasonDeliveryFailed, ReasonDeliveryRejected}}, []string{"dlq.rule.>"}},
		{Filter{Reasons: []string{ReasonSchemaInvalid}}, []string{"dlq.ingress.schema_invalid"}},
		{Filter{Reasons: []string{ReasonSchemaInvalid, ReasonUnknownType}}, []string{"dlq.ingress.>"}},
		{Filter{Reasons: []string{ReasonSchemaInvalid, ReasonDeliveryFailed}}, []string{"dlq.>"}},
	} {
		if got := tt.f.subjects(); !slices.Equal(got, tt.want) {
			t.Errorf("%+v: subjects %v, want %v", tt.f, got, tt.want)
		}
	}
}

func TestFilterValidate(t *testing.T) {
	if err := (Filter{Reasons: []string{"nope"}}).Validate(); err == nil {
		t.Error("an unknown reason was accepted")
	}
	if err := (Filter{Rule: "billing", Reasons: []string{ReasonSchemaInvalid}}).Validate(); err == nil {
		t.Error("a rule with an ingress reason was accepted")
	}
	if err := (Filter{Rule: "billing", Reasons: []string{ReasonDeliveryRejected}}).Validate(); err != nil {
		t.Error(err)
	}
}
