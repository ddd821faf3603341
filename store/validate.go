package store

import (
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxTeamNameLen bounds a team name (the billing business-unit id).
const MaxTeamNameLen = 200

// ValidateTeamName applies the business-unit id rules and names the one
// broken: letters, digits and _ - . + @; a letter or digit at both ends;
// at most 200 characters.
func ValidateTeamName(name string) error {
	if name == "" {
		return invalid("name", "name is required")
	}
	if n := len([]rune(name)); n > MaxTeamNameLen {
		return invalid("name", "name must be at most %d characters (got %d)", MaxTeamNameLen, n)
	}
	for i, r := range name {
		if !isAlnum(r) && !strings.ContainsRune("_-.+@", r) {
			return invalid("name", "name may contain only letters, digits and _ - . + @ (found %q at position %d)", r, i+1)
		}
	}
	first, last := rune(name[0]), rune(name[len(name)-1])
	if !isAlnum(first) || !isAlnum(last) {
		return invalid("name", "name must start and end with a letter or digit")
	}
	return nil
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

var durationRe = regexp.MustCompile(`^([1-9][0-9]*)([smhd])$`)

// ValidateBudgetDuration accepts daily, weekly, monthly or a count of
// seconds, minutes, hours or days such as "30d".
func ValidateBudgetDuration(field string, d *string) error {
	if d == nil {
		return nil
	}
	switch *d {
	case "daily", "weekly", "monthly":
		return nil
	}
	if durationRe.MatchString(*d) {
		return nil
	}
	return invalid(field, "%s must be daily, weekly, monthly or a count like 30d, 12h (got %q)", field, *d)
}

// ParseDuration reads "30d", "12h", "15m", "45s" or a Go duration.
func ParseDuration(s string) (time.Duration, error) {
	if m := durationRe.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		unit := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[m[2]]
		return time.Duration(n) * unit, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("duration must look like 30d, 12h or 15m (got %q)", s)
	}
	return d, nil
}

func nonNegative(field string, v *float64) error {
	if v != nil && *v < 0 {
		return invalid(field, "%s must not be negative (got %v)", field, *v)
	}
	return nil
}

func nonNegativeInt(field string, v *int64) error {
	if v != nil && *v < 0 {
		return invalid(field, "%s must not be negative (got %d)", field, *v)
	}
	return nil
}

func positiveInt(field string, v *int64) error {
	if v != nil && *v <= 0 {
		return invalid(field, "%s must be positive (got %d)", field, *v)
	}
	return nil
}

func nonNegativeLimits(field string, m ModelLimits) error {
	for model, v := range m {
		if strings.TrimSpace(model) == "" {
			return invalid(field, "%s has an empty model name", field)
		}
		if v < 0 {
			return invalid(field, "%s[%q] must not be negative (got %d)", field, model, v)
		}
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Normalize fills defaults and checks the rules of a team.
func (t *TeamSpec) Normalize() error {
	t.Name = strings.TrimSpace(t.Name)
	if t.Models == nil {
		t.Models = []string{}
	}
	return firstErr(
		ValidateTeamName(t.Name),
		nonNegative("max_budget", t.MaxBudget),
		nonNegative("soft_budget", t.SoftBudget),
		ValidateBudgetDuration("budget_duration", t.BudgetDuration),
		nonNegativeInt("rpm_limit", t.RPMLimit),
		nonNegativeInt("tpm_limit", t.TPMLimit),
		nonNegativeInt("max_parallel_requests", t.MaxParallelRequests),
		validateModelList("models", t.Models),
		t.MemberKeyCaps.validate(),
	)
}

// validate checks a team's caps on member keys; errors name the field as
// the API nests it (member_key_caps.max_budget).
func (c *KeyCaps) validate() error {
	return firstErr(
		nonNegative("member_key_caps.max_budget", c.MaxBudget),
		ValidateBudgetDuration("member_key_caps.budget_duration", c.BudgetDuration),
		nonNegativeInt("member_key_caps.rpm_limit", c.RPMLimit),
		nonNegativeInt("member_key_caps.tpm_limit", c.TPMLimit),
		nonNegativeInt("member_key_caps.max_parallel_requests", c.MaxParallelRequests),
	)
}

func validateModelList(field string, models []string) error {
	for i, m := range models {
		if strings.TrimSpace(m) == "" {
			return invalid(field, "%s[%d] is empty", field, i)
		}
	}
	return nil
}

// DefaultAPIBase is used when a provider of a known hosted type has none.
var DefaultAPIBase = map[string]string{
	"openai":    "https://api.openai.com/v1",
	"anthropic": "https://api.anthropic.com",
	"gemini":    "https://generativelanguage.googleapis.com",
	"mistral":   "https://api.mistral.ai/v1",
	"groq":      "https://api.groq.com/openai/v1",
	"cohere":    "https://api.cohere.com",
}

// Normalize fills defaults and checks a provider credential.
func (p *ProviderSpec) Normalize() error {
	p.Name = strings.TrimSpace(p.Name)
	p.APIBase = strings.TrimRight(strings.TrimSpace(p.APIBase), "/")
	if p.Name == "" {
		return invalid("name", "name is required")
	}
	if !slices.Contains(ProviderTypes, p.Type) {
		return invalid("type", "type %q is not a known provider type; use one of: %s", p.Type, strings.Join(ProviderTypes, ", "))
	}
	if p.APIBase == "" {
		p.APIBase = DefaultAPIBase[p.Type]
	}
	if p.APIBase == "" && p.Type != "bedrock" && p.Type != "vertex" {
		return invalid("api_base", "api_base is required for provider type %s", p.Type)
	}
	if p.APIBase != "" {
		u, err := url.Parse(p.APIBase)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid("api_base", "api_base must be an http(s) URL such as https://api.openai.com/v1 (got %q)", p.APIBase)
		}
	}
	return nil
}

// Normalize fills defaults and checks a deployment.
func (m *ModelSpec) Normalize() error {
	m.ModelName = strings.TrimSpace(m.ModelName)
	m.UpstreamModel = strings.TrimSpace(m.UpstreamModel)
	if m.ModelName == "" {
		return invalid("model_name", "model_name is required")
	}
	if m.ProviderID == "" {
		return invalid("provider_id", "provider_id is required")
	}
	if !isUUID(m.ProviderID) {
		return invalid("provider_id", "provider_id must be a provider's id (a UUID)")
	}
	if m.UpstreamModel == "" {
		m.UpstreamModel = m.ModelName
	}
	if m.Weight == 0 {
		m.Weight = 1
	}
	if m.Weight < 0 {
		return invalid("weight", "weight must be positive (got %d)", m.Weight)
	}
	in, out := m.InputCostPerMillion, m.OutputCostPerMillion
	return firstErr(
		nonNegative("input_cost_per_million", &in),
		nonNegative("output_cost_per_million", &out),
		nonNegativeInt("rpm_limit", m.RPMLimit),
		nonNegativeInt("tpm_limit", m.TPMLimit),
		nonNegativeInt("context_window", m.ContextWindow),
		positiveInt("max_output_tokens", m.MaxOutputTokens),
		positiveInt("connect_timeout_ms", m.ConnectTimeoutMS),
		positiveInt("first_byte_timeout_ms", m.FirstByteTimeoutMS),
		positiveInt("timeout_ms", m.TimeoutMS),
	)
}

// Normalize fills defaults and checks a user.
func (u *UserSpec) Normalize() error {
	u.Email = strings.TrimSpace(u.Email)
	if u.Email == "" {
		return invalid("email", "email is required")
	}
	if addr, err := mail.ParseAddress(u.Email); err != nil || addr.Address != u.Email {
		return invalid("email", "email %q is not a valid address", u.Email)
	}
	if u.Role == "" {
		u.Role = RoleMember
	}
	if u.Role != RoleAdmin && u.Role != RoleFinance && u.Role != RoleMember {
		return invalid("role", "role must be admin, finance or member (got %q)", u.Role)
	}
	return firstErr(
		nonNegative("max_budget", u.MaxBudget),
		nonNegative("soft_budget", u.SoftBudget),
		ValidateBudgetDuration("budget_duration", u.BudgetDuration),
		nonNegativeInt("rpm_limit", u.RPMLimit),
		nonNegativeInt("tpm_limit", u.TPMLimit),
	)
}

// Normalize fills defaults and checks a key.
func (k *KeySpec) Normalize() error {
	if k.Models == nil {
		k.Models = []string{}
	}
	if k.KeyType == "" {
		k.KeyType = KeyTypeLLMAPI
	}
	if k.KeyType != KeyTypeLLMAPI && k.KeyType != KeyTypeManagement && k.KeyType != KeyTypeDefault {
		return invalid("key_type", "key_type must be llm_api, management or default (got %q)", k.KeyType)
	}
	if k.TeamID != nil && !isUUID(*k.TeamID) {
		return invalid("team_id", "team_id must be a team's id (a UUID)")
	}
	if k.UserID != nil && !isUUID(*k.UserID) {
		return invalid("user_id", "user_id must be a user's id (a UUID)")
	}
	return firstErr(
		nonNegative("max_budget", k.MaxBudget),
		nonNegative("soft_budget", k.SoftBudget),
		ValidateBudgetDuration("budget_duration", k.BudgetDuration),
		nonNegativeInt("rpm_limit", k.RPMLimit),
		nonNegativeInt("tpm_limit", k.TPMLimit),
		nonNegativeInt("max_parallel_requests", k.MaxParallelRequests),
		nonNegativeLimits("model_rpm_limit", k.ModelRPMLimit),
		nonNegativeLimits("model_tpm_limit", k.ModelTPMLimit),
		validateModelList("models", k.Models),
	)
}

var uuidRe = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func isUUID(s string) bool { return uuidRe.MatchString(s) }

// IsID reports whether s can be a resource id; lookups of anything else
// are answered "not found" without a query.
func IsID(s string) bool { return isUUID(s) }
