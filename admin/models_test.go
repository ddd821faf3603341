package admin_test

import (
	"net/http"
	"testing"
)

func TestModelValidation(t *testing.T) {
	e := newEnv(t)
	prov := e.newProvider("p1")
	const ghost = "0b9e4c1e-0000-4000-8000-000000000001"
	cases := []struct {
		name  string
		body  obj
		param string
		msg   []string
	}{
		{"unknown provider", obj{"model_name": "m", "provider_id": ghost}, "provider_id", []string{"provider_id", ghost}},
		{"provider not a uuid", obj{"model_name": "m", "provider_id": "p1"}, "provider_id", []string{"provider_id"}},
		{"no provider", obj{"model_name": "m"}, "provider_id", []string{"provider_id"}},
		{"no model_name", obj{"provider_id": prov}, "model_name", []string{"model_name"}},
		{"negative input cost", obj{"model_name": "m", "provider_id": prov, "input_cost_per_million": -0.5}, "input_cost_per_million", []string{"input_cost_per_million", "negative"}},
		{"negative output cost", obj{"model_name": "m", "provider_id": prov, "output_cost_per_million": -1}, "output_cost_per_million", []string{"output_cost_per_million"}},
		{"negative rpm", obj{"model_name": "m", "provider_id": prov, "rpm_limit": -1}, "rpm_limit", []string{"rpm_limit"}},
		{"negative weight", obj{"model_name": "m", "provider_id": prov, "weight": -3}, "weight", []string{"weight"}},
		{"cost as string", obj{"model_name": "m", "provider_id": prov, "input_cost_per_million": "1"}, "input_cost_per_million", []string{"input_cost_per_million"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := e.at(t)
			models, audits := e.count("models"), e.count("audit_logs")
			r := e.do(http.MethodPost, "/api/v1/models", c.body)
			wantError(t, r, http.StatusBadRequest, "invalid_request", c.param, c.msg...)
			if e.count("models") != models || e.count("audit_logs") != audits {
				t.Error("a refused create wrote rows")
			}
		})
	}
}

func TestModelsShareNameFilterAndPatch(t *testing.T) {
	e := newEnv(t)
	p1, p2 := e.newProvider("p1"), e.newProvider("p2")

	a, ma := e.create("/api/v1/models", obj{"model_name": "gpt-4o", "provider_id": p1, "input_cost_per_million": 2.5, "output_cost_per_million": 10})
	b, _ := e.create("/api/v1/models", obj{"model_name": "gpt-4o", "provider_id": p2, "upstream_model": "gpt-4o-2024-08-06", "weight": 3})
	c, _ := e.create("/api/v1/models", obj{"model_name": "claude", "provider_id": p2})
	if ma["upstream_model"] != "gpt-4o" || ma["weight"] != 1.0 || ma["enabled"] != true {
		t.Errorf("defaults: upstream_model %v, weight %v, enabled %v", ma["upstream_model"], ma["weight"], ma["enabled"])
	}
	if ma["input_cost_per_million"] != 2.5 || ma["output_cost_per_million"] != 10.0 || ma["provider_id"] != p1 {
		t.Errorf("create echoed %v", ma)
	}
	e.wantAudit("model.create", "model", a)

	ids := func(rows []obj) map[string]bool {
		m := map[string]bool{}
		for _, r := range rows {
			m[r["id"].(string)] = true
		}
		return m
	}
	filters := []struct {
		query string
		want  []string
	}{
		{"", []string{a, b, c}},
		{"?model_name=gpt-4o", []string{a, b}},
		{"?model_name=claude", []string{c}},
		{"?model_name=gpt", nil},
		{"?provider_id=" + p2, []string{b, c}},
		{"?provider_id=" + p2 + "&model_name=gpt-4o", []string{b}},
	}
	for _, f := range filters {
		rows, _ := e.list("/api/v1/models" + f.query)
		got := ids(rows)
		if len(got) != len(f.want) {
			t.Errorf("GET /models%s: %d rows, want %d", f.query, len(got), len(f.want))
		}
		for _, id := range f.want {
			if !got[id] {
				t.Errorf("GET /models%s: missing %s", f.query, id)
			}
		}
	}
	wantError(t, e.do(http.MethodGet, "/api/v1/models?provider_id=nope", nil), 400, "invalid_request", "provider_id")

	// PATCH enabled false changes only that.
	r := e.must(http.StatusOK, http.MethodPatch, "/api/v1/models/"+a, obj{"enabled": false})
	if r.json["enabled"] != false || r.json["model_name"] != "gpt-4o" || r.json["input_cost_per_million"] != 2.5 || r.json["provider_id"] != p1 {
		t.Errorf("PATCH enabled: %s", r.raw)
	}
	if g := e.must(http.StatusOK, http.MethodGet, "/api/v1/models/"+a, nil); g.json["enabled"] != false {
		t.Errorf("GET after PATCH: %s", g.raw)
	}
	au := e.wantAudit("model.update", "model", a)
	if au["before"].(obj)["enabled"] != true || au["after"].(obj)["enabled"] != false {
		t.Errorf("model.update audit before/after: %v / %v", au["before"], au["after"])
	}

	// A PATCH to a provider that does not exist is refused and changes nothing.
	r = e.do(http.MethodPatch, "/api/v1/models/"+a, obj{"provider_id": "0b9e4c1e-0000-4000-8000-000000000001"})
	wantError(t, r, 400, "invalid_request", "provider_id")
	r = e.do(http.MethodPatch, "/api/v1/models/"+a, obj{"input_cost_per_million": -1})
	wantError(t, r, 400, "invalid_request", "input_cost_per_million")
	if g := e.must(http.StatusOK, http.MethodGet, "/api/v1/models/"+a, nil); g.json["provider_id"] != p1 || g.json["input_cost_per_million"] != 2.5 {
		t.Errorf("refused PATCHes changed the model: %s", g.raw)
	}

	// Delete.
	if r := e.do(http.MethodDelete, "/api/v1/models/"+c, nil); r.status != http.StatusNoContent {
		t.Fatalf("DELETE model: %d %s", r.status, r.raw)
	}
	wantError(t, e.do(http.MethodGet, "/api/v1/models/"+c, nil), 404, "not_found", "")
	e.wantAudit("model.delete", "model", c)
	if rows, _ := e.list("/api/v1/models?model_name=claude"); len(rows) != 0 {
		t.Errorf("deleted model still listed")
	}
}

func TestModelsWithoutPricesTakeTheListPrice(t *testing.T) {
	e := newEnv(t)
	p := e.newProvider("anthropic-main")
	_, listed := e.create("/api/v1/models", obj{"model_name": "smart", "provider_id": p, "upstream_model": "claude-sonnet-4-5-20250929"})
	if listed["input_cost_per_million"] != 3.0 || listed["output_cost_per_million"] != 15.0 ||
		listed["context_window"] != 200000.0 || listed["max_output_tokens"] != 64000.0 {
		t.Fatalf("unpriced model = %v", listed)
	}
	// A price given, even 0, is kept; PATCH changes only what it names.
	id, free := e.create("/api/v1/models", obj{"model_name": "gpt-4o", "provider_id": p, "input_cost_per_million": 0, "output_cost_per_million": 0})
	if free["input_cost_per_million"] != 0.0 || free["output_cost_per_million"] != 0.0 || free["context_window"] != 128000.0 {
		t.Fatalf("priced model = %v", free)
	}
	got := e.must(http.StatusOK, http.MethodPatch, "/api/v1/models/"+id, obj{"output_cost_per_million": 12}).json
	if got["input_cost_per_million"] != 0.0 || got["output_cost_per_million"] != 12.0 {
		t.Fatalf("after PATCH = %v", got)
	}
	// Unknown models stay unpriced.
	_, mine := e.create("/api/v1/models", obj{"model_name": "my-finetune", "provider_id": p})
	if mine["input_cost_per_million"] != 0.0 || mine["context_window"] != nil {
		t.Fatalf("unknown model = %v", mine)
	}
}
