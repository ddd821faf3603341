package store

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/lib/pq"
)

// JSON is a jsonb column holding an object; it scans a copy of the bytes.
type JSON json.RawMessage

// Value implements driver.Valuer.
func (j JSON) Value() (driver.Value, error) {
	if len(j) == 0 {
		return []byte("{}"), nil
	}
	return []byte(j), nil
}

// Scan implements sql.Scanner.
func (j *JSON) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*j = nil
	case []byte:
		*j = append((*j)[:0:0], v...)
	case string:
		*j = JSON(v)
	default:
		return fmt.Errorf("scan jsonb from %T", src)
	}
	return nil
}

// MarshalJSON writes the raw object ({} when empty).
func (j JSON) MarshalJSON() ([]byte, error) {
	if len(j) == 0 {
		return []byte("{}"), nil
	}
	return []byte(j), nil
}

// UnmarshalJSON keeps the raw bytes; null becomes empty.
func (j *JSON) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*j = nil
		return nil
	}
	*j = append((*j)[:0:0], b...)
	return nil
}

// NullJSON is a nullable jsonb column; empty marshals as null.
type NullJSON []byte

// Scan implements sql.Scanner.
func (j *NullJSON) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*j = nil
	case []byte:
		*j = append((*j)[:0:0], v...)
	case string:
		*j = NullJSON(v)
	default:
		return fmt.Errorf("scan jsonb from %T", src)
	}
	return nil
}

// Value implements driver.Valuer.
func (j NullJSON) Value() (driver.Value, error) {
	if len(j) == 0 {
		return nil, nil
	}
	return []byte(j), nil
}

// MarshalJSON writes the raw value or null.
func (j NullJSON) MarshalJSON() ([]byte, error) {
	if len(j) == 0 {
		return []byte("null"), nil
	}
	return []byte(j), nil
}

// Provider types Tollgate knows. Only the OpenAI wire format is served so
// far; the others are accepted so credentials can be stored ahead.
var ProviderTypes = []string{"openai", "azure", "anthropic", "bedrock", "vertex", "gemini", "mistral", "groq", "cohere", "openai_compatible", "ollama", "mock"}

// ProviderSpec is the writable part of a provider credential.
type ProviderSpec struct {
	Name    string `db:"name" json:"name"`
	Type    string `db:"type" json:"type"`
	APIBase string `db:"api_base" json:"api_base"`
	Config  JSON   `db:"config" json:"config"`
}

// Provider is a stored credential. The sealed API key never leaves the
// store in JSON; callers see only a hint.
type Provider struct {
	ID string `db:"id" json:"id"`
	ProviderSpec
	APIKeySealed []byte    `db:"api_key_enc" json:"-"`
	APIKeyHint   string    `db:"api_key_hint" json:"api_key_hint"`
	HasAPIKey    bool      `db:"-" json:"has_api_key"`
	CreatedAt    time.Time `db:"created_at" json:"created_at"`
	UpdatedAt    time.Time `db:"updated_at" json:"updated_at"`
}

// ModelSpec is the writable part of a deployment.
type ModelSpec struct {
	ModelName            string  `db:"model_name" json:"model_name"`
	ProviderID           string  `db:"provider_id" json:"provider_id"`
	UpstreamModel        string  `db:"upstream_model" json:"upstream_model"`
	InputCostPerMillion  float64 `db:"input_cost_per_million" json:"input_cost_per_million"`
	OutputCostPerMillion float64 `db:"output_cost_per_million" json:"output_cost_per_million"`
	RPMLimit             *int64  `db:"rpm_limit" json:"rpm_limit"`
	TPMLimit             *int64  `db:"tpm_limit" json:"tpm_limit"`
	Weight               int     `db:"weight" json:"weight"`
	ContextWindow        *int64  `db:"context_window" json:"context_window"`
	MaxOutputTokens      *int64  `db:"max_output_tokens" json:"max_output_tokens"`
	// Timeouts bound each attempt on this deployment; nil means the
	// gateway-wide default.
	ConnectTimeoutMS   *int64 `db:"connect_timeout_ms" json:"connect_timeout_ms"`
	FirstByteTimeoutMS *int64 `db:"first_byte_timeout_ms" json:"first_byte_timeout_ms"`
	TimeoutMS          *int64 `db:"timeout_ms" json:"timeout_ms"`
	Params             JSON   `db:"params" json:"params"`
	Enabled            bool   `db:"enabled" json:"enabled"`
}

// Model is one deployment of a public model name on a provider.
type Model struct {
	ID string `db:"id" json:"id"`
	ModelSpec
	CreatedAt time.Time `db:"created_at" json:"created_at"`
	UpdatedAt time.Time `db:"updated_at" json:"updated_at"`
}

// TeamSpec is the writable part of a team.
type TeamSpec struct {
	Name                string         `db:"name" json:"name"`
	Models              pq.StringArray `db:"models" json:"models"`
	MaxBudget           *float64       `db:"max_budget" json:"max_budget"`
	SoftBudget          *float64       `db:"soft_budget" json:"soft_budget"`
	BudgetDuration      *string        `db:"budget_duration" json:"budget_duration"`
	RPMLimit            *int64         `db:"rpm_limit" json:"rpm_limit"`
	TPMLimit            *int64         `db:"tpm_limit" json:"tpm_limit"`
	MaxParallelRequests *int64         `db:"max_parallel_requests" json:"max_parallel_requests"`
	BudgetID            *string        `db:"budget_id" json:"budget_id"`
	Blocked             bool           `db:"blocked" json:"blocked"`
	Metadata            JSON           `db:"metadata" json:"metadata"`
	// MemberKeyCaps bound the keys members make for themselves here.
	MemberKeyCaps KeyCaps `db:"member_key_caps" json:"member_key_caps"`
}

// KeyCaps are a team's upper bounds on its members' own keys; nil is no
// bound. A member's key must set a bounded field, within the bound.
type KeyCaps struct {
	MaxBudget           *float64 `json:"max_budget,omitempty"`
	BudgetDuration      *string  `json:"budget_duration,omitempty"` // the period member keys' budgets must use
	RPMLimit            *int64   `json:"rpm_limit,omitempty"`
	TPMLimit            *int64   `json:"tpm_limit,omitempty"`
	MaxParallelRequests *int64   `json:"max_parallel_requests,omitempty"`
}

// Value implements driver.Valuer.
func (c KeyCaps) Value() (driver.Value, error) { return json.Marshal(c) }

// Scan implements sql.Scanner.
func (c *KeyCaps) Scan(src any) error {
	*c = KeyCaps{}
	switch v := src.(type) {
	case nil:
		return nil
	case []byte:
		return json.Unmarshal(v, c)
	case string:
		return json.Unmarshal([]byte(v), c)
	}
	return fmt.Errorf("scan jsonb from %T", src)
}

// Team is a cost center: its name is the billing business-unit id.
type Team struct {
	ID string `db:"id" json:"id"`
	TeamSpec
	Spend         float64    `db:"spend" json:"spend"`
	BudgetResetAt *time.Time `db:"budget_reset_at" json:"budget_reset_at"`
	CreatedAt     time.Time  `db:"created_at" json:"created_at"`
	UpdatedAt     time.Time  `db:"updated_at" json:"updated_at"`
}

// AllTeamModels in a key's models list means "whatever the team may use".
const AllTeamModels = "all-team-models"

// Unrestricted reports whether a models list allows every model: empty,
// "*" or all-team-models.
func Unrestricted(models []string) bool {
	return len(models) == 0 || slices.Contains(models, "*") || slices.Contains(models, AllTeamModels)
}

// Roles a user may hold.
const (
	RoleAdmin   = "admin"
	RoleFinance = "finance"
	RoleMember  = "member"
)

// UserSpec is the writable part of a user.
type UserSpec struct {
	Email          string   `db:"email" json:"email"`
	Name           string   `db:"name" json:"name"`
	Role           string   `db:"role" json:"role"`
	MaxBudget      *float64 `db:"max_budget" json:"max_budget"`
	SoftBudget     *float64 `db:"soft_budget" json:"soft_budget"`
	BudgetDuration *string  `db:"budget_duration" json:"budget_duration"`
	RPMLimit       *int64   `db:"rpm_limit" json:"rpm_limit"`
	TPMLimit       *int64   `db:"tpm_limit" json:"tpm_limit"`
	// Blocked users cannot sign in; their sessions end and keys stop.
	Blocked bool `db:"blocked" json:"blocked"`
}

// Who decides a user's role.
const (
	RoleFromAdmin = "admin" // set by hand; single sign-on leaves it alone
	RoleFromSSO   = "sso"   // mapped from the groups claim at each sign-in
)

// User is a person who signs in to the dashboard or owns keys.
type User struct {
	ID string `db:"id" json:"id"`
	UserSpec
	OIDCIssuer         *string        `db:"oidc_issuer" json:"oidc_issuer"`
	OIDCSubject        *string        `db:"oidc_subject" json:"oidc_subject"`
	RoleSource         string         `db:"role_source" json:"role_source"`
	SessionsValidAfter time.Time      `db:"sessions_valid_after" json:"-"`
	LastSignInAt       *time.Time     `db:"last_sign_in_at" json:"last_sign_in_at"`
	Teams              pq.StringArray `db:"teams" json:"teams"`
	Spend              float64        `db:"spend" json:"spend"`
	BudgetResetAt      *time.Time     `db:"budget_reset_at" json:"budget_reset_at"`
	CreatedAt          time.Time      `db:"created_at" json:"created_at"`
	UpdatedAt          time.Time      `db:"updated_at" json:"updated_at"`
}

// Key types.
const (
	KeyTypeLLMAPI     = "llm_api"
	KeyTypeManagement = "management"
	KeyTypeDefault    = "default"
)

// KeySpec is the writable part of a virtual key.
type KeySpec struct {
	Alias               string         `db:"alias" json:"alias"`
	TeamID              *string        `db:"team_id" json:"team_id"`
	UserID              *string        `db:"user_id" json:"user_id"`
	Models              pq.StringArray `db:"models" json:"models"`
	KeyType             string         `db:"key_type" json:"key_type"`
	MaxBudget           *float64       `db:"max_budget" json:"max_budget"`
	SoftBudget          *float64       `db:"soft_budget" json:"soft_budget"`
	BudgetDuration      *string        `db:"budget_duration" json:"budget_duration"`
	RPMLimit            *int64         `db:"rpm_limit" json:"rpm_limit"`
	TPMLimit            *int64         `db:"tpm_limit" json:"tpm_limit"`
	MaxParallelRequests *int64         `db:"max_parallel_requests" json:"max_parallel_requests"`
	ModelRPMLimit       ModelLimits    `db:"model_rpm_limit" json:"model_rpm_limit"`
	ModelTPMLimit       ModelLimits    `db:"model_tpm_limit" json:"model_tpm_limit"`
	BudgetID            *string        `db:"budget_id" json:"budget_id"`
	ExpiresAt           *time.Time     `db:"expires_at" json:"expires_at"`
	Blocked             bool           `db:"blocked" json:"blocked"`
	Metadata            JSON           `db:"metadata" json:"metadata"`
}

// Key is a virtual key. Only the SHA-256 of its secret is stored.
type Key struct {
	ID string `db:"id" json:"id"`
	KeySpec
	Hash          string     `db:"key_hash" json:"-"`
	Hint          string     `db:"key_hint" json:"key_hint"`
	Spend         float64    `db:"spend" json:"spend"`
	BudgetResetAt *time.Time `db:"budget_reset_at" json:"budget_reset_at"`
	LastUsedAt    *time.Time `db:"last_used_at" json:"last_used_at"`
	CreatedAt     time.Time  `db:"created_at" json:"created_at"`
	UpdatedAt     time.Time  `db:"updated_at" json:"updated_at"`
}

// Expired reports whether the key's expiry has passed at now.
func (k *Key) Expired(now time.Time) bool {
	return k.ExpiresAt != nil && !now.Before(*k.ExpiresAt)
}

// Spend log statuses.
const (
	StatusSuccess = "success"
	StatusFailure = "failure"
)

// SpendLog is one request as billed: append-only.
type SpendLog struct {
	RequestID    string    `db:"request_id" json:"request_id"`
	CreatedAt    time.Time `db:"created_at" json:"created_at"`
	KeyID        *string   `db:"key_id" json:"key_id"`
	TeamID       *string   `db:"team_id" json:"team_id"`
	UserID       *string   `db:"user_id" json:"user_id"`
	Model        string    `db:"model" json:"model"`
	Provider     string    `db:"provider" json:"provider"`
	DeploymentID *string   `db:"deployment_id" json:"deployment_id"`
	Endpoint     string    `db:"endpoint" json:"endpoint"`
	InputTokens  int64     `db:"input_tokens" json:"input_tokens"`
	OutputTokens int64     `db:"output_tokens" json:"output_tokens"`
	Cost         float64   `db:"cost" json:"cost"`
	LatencyMS    int64     `db:"latency_ms" json:"latency_ms"`
	Status       string    `db:"status" json:"status"`
	StatusCode   int       `db:"status_code" json:"status_code"`
	Error        string    `db:"error" json:"error"`
	CacheHit     bool      `db:"cache_hit" json:"cache_hit"`
	// Guardrails is what guardrails found and did on this request.
	Guardrails GuardrailHits `db:"guardrails" json:"guardrails,omitempty"`
}

// Guardrail types, modes and actions.
const (
	GuardrailPII             = "pii"
	GuardrailSecrets         = "secrets"
	GuardrailKeywords        = "keywords"
	GuardrailRegex           = "regex"
	GuardrailPromptInjection = "prompt_injection"
	GuardrailMaxPromptSize   = "max_prompt_size"
	GuardrailExternal        = "external"

	ModePreCall    = "pre_call"    // on the prompt, before the provider sees it
	ModePostCall   = "post_call"   // on the answer, streamed or not
	ModeDuringCall = "during_call" // on the prompt, alongside the upstream call, which a hit cancels

	ActionBlock = "block" // 400 content_policy_violation
	ActionMask  = "mask"  // matches replaced by typed placeholders such as [EMAIL]
	ActionLog   = "log"   // recorded only
)

// GuardrailSpec is the writable part of a guardrail. Config depends on
// the type (docs/guardrails.md).
type GuardrailSpec struct {
	Name      string         `db:"name" json:"name"`
	Type      string         `db:"type" json:"type"`
	Mode      string         `db:"mode" json:"mode"`
	Action    string         `db:"action" json:"action"`
	DefaultOn bool           `db:"default_on" json:"default_on"`
	Enabled   bool           `db:"enabled" json:"enabled"`
	TeamIDs   pq.StringArray `db:"team_ids" json:"team_ids"`
	Config    JSON           `db:"config" json:"config"`
}

// Guardrail is a check on prompts or answers.
type Guardrail struct {
	ID string `db:"id" json:"id"`
	GuardrailSpec
	CreatedAt time.Time `db:"created_at" json:"created_at"`
	UpdatedAt time.Time `db:"updated_at" json:"updated_at"`
}

// GuardrailHit is one guardrail's finding on a request, by matched type
// (EMAIL, CREDIT_CARD, AWS_ACCESS_KEY, KEYWORD…): never the matched text.
type GuardrailHit struct {
	Guardrail string `json:"guardrail"`
	Mode      string `json:"mode"`
	Action    string `json:"action"`
	Type      string `json:"type"`
	Count     int    `json:"count"`
}

// GuardrailHits are stored as a jsonb array (NULL when empty).
type GuardrailHits []GuardrailHit

// Value implements driver.Valuer.
func (h GuardrailHits) Value() (driver.Value, error) {
	if len(h) == 0 {
		return nil, nil
	}
	return json.Marshal([]GuardrailHit(h))
}

// Scan implements sql.Scanner.
func (h *GuardrailHits) Scan(src any) error {
	*h = nil
	switch v := src.(type) {
	case nil:
		return nil
	case []byte:
		return json.Unmarshal(v, (*[]GuardrailHit)(h))
	case string:
		return json.Unmarshal([]byte(v), (*[]GuardrailHit)(h))
	}
	return fmt.Errorf("scan jsonb from %T", src)
}

// AuditEntry records one mutation: who, what, when, before and after.
type AuditEntry struct {
	ID           int64     `db:"id" json:"id"`
	CreatedAt    time.Time `db:"created_at" json:"created_at"`
	Actor        string    `db:"actor" json:"actor"`
	Action       string    `db:"action" json:"action"`
	ResourceType string    `db:"resource_type" json:"resource_type"`
	ResourceID   string    `db:"resource_id" json:"resource_id"`
	Before       NullJSON  `db:"before" json:"before"`
	After        NullJSON  `db:"after" json:"after"`
}

// ModelLimits maps public model names to a per-minute limit (jsonb).
type ModelLimits map[string]int64

// Value implements driver.Valuer.
func (m ModelLimits) Value() (driver.Value, error) {
	if len(m) == 0 {
		return []byte("{}"), nil
	}
	return json.Marshal(map[string]int64(m))
}

// Scan implements sql.Scanner.
func (m *ModelLimits) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*m = nil
		return nil
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("scan jsonb from %T", src)
	}
	out := ModelLimits{}
	if err := json.Unmarshal(b, &out); err != nil {
		return err
	}
	if len(out) == 0 {
		out = nil
	}
	*m = out
	return nil
}

// BudgetSpec is the writable part of a reusable budget profile.
type BudgetSpec struct {
	Name                string   `db:"name" json:"name"`
	MaxBudget           *float64 `db:"max_budget" json:"max_budget"`
	SoftBudget          *float64 `db:"soft_budget" json:"soft_budget"`
	BudgetDuration      *string  `db:"budget_duration" json:"budget_duration"`
	RPMLimit            *int64   `db:"rpm_limit" json:"rpm_limit"`
	TPMLimit            *int64   `db:"tpm_limit" json:"tpm_limit"`
	MaxParallelRequests *int64   `db:"max_parallel_requests" json:"max_parallel_requests"`
}

// Budget is a profile of budget and limits that keys and teams point to.
type Budget struct {
	ID string `db:"id" json:"id"`
	BudgetSpec
	CreatedAt time.Time `db:"created_at" json:"created_at"`
	UpdatedAt time.Time `db:"updated_at" json:"updated_at"`
}

// GlobalBudgetSpec is the writable part of the budget over all spend.
type GlobalBudgetSpec struct {
	MaxBudget      *float64 `db:"max_budget" json:"max_budget"`
	SoftBudget     *float64 `db:"soft_budget" json:"soft_budget"`
	BudgetDuration *string  `db:"budget_duration" json:"budget_duration"`
}

// GlobalBudget caps the spend of the whole deployment.
type GlobalBudget struct {
	ID string `db:"id" json:"-"`
	GlobalBudgetSpec
	BudgetResetAt *time.Time `db:"budget_reset_at" json:"budget_reset_at"`
	Spend         float64    `db:"spend" json:"spend"`
	UpdatedAt     time.Time  `db:"updated_at" json:"updated_at"`
}

// Budget alert kinds.
const (
	AlertSoft = "soft"
	AlertHard = "hard"
)

// BudgetAlert records one budget crossed in one period.
type BudgetAlert struct {
	ID          int64      `db:"id" json:"id"`
	CreatedAt   time.Time  `db:"created_at" json:"created_at"`
	SubjectType string     `db:"subject_type" json:"subject_type"`
	SubjectID   string     `db:"subject_id" json:"subject_id"`
	SubjectName string     `db:"subject_name" json:"subject_name"`
	Kind        string     `db:"kind" json:"kind"`
	Period      string     `db:"period" json:"period"`
	Spend       float64    `db:"spend" json:"spend"`
	Threshold   float64    `db:"threshold" json:"threshold"`
	DeliveredAt *time.Time `db:"delivered_at" json:"delivered_at"`
	Attempts    int        `db:"attempts" json:"attempts"`
	LastError   string     `db:"last_error" json:"last_error"`
}
