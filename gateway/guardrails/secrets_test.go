package guardrails

import (
	"strings"
	"testing"
)

func TestSecrets(t *testing.T) {
	r := rule(t, "secrets", "pre_call", "block", `{}`)
	pem := fakePEM("RSA PRIVATE KEY", fakeKeyLine, strings.ToUpper(fakeKeyLine[:40])+"+/"+fakeKeyLine[:22])
	jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"aws_access_key_id = AKIAIOSFODNN7EXAMPLE", []string{"AWS_ACCESS_KEY:AKIAIOSFODNN7EXAMPLE"}},
		{"temp ASIAY34FZKBOKMUTVV7A here", []string{"AWS_ACCESS_KEY:ASIAY34FZKBOKMUTVV7A"}},
		{"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", []string{"AWS_SECRET_KEY:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}},
		{"key=AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", []string{"GCP_API_KEY:AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"}},
		{"DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=" + strings.Repeat("Zm9vYmFy", 11) + ";EndpointSuffix=core.windows.net",
			[]string{"AZURE_STORAGE_KEY:" + strings.Repeat("Zm9vYmFy", 11)}},
		{"here:\n" + pem + "\nthanks", []string{"PRIVATE_KEY:" + pem}},
		{"Authorization: Bearer abcdef0123456789abcdef0123456789", []string{"BEARER_TOKEN:abcdef0123456789abcdef0123456789"}},
		{"token " + jwt + " expired", []string{"JWT:" + jwt}},
		{"GITHUB_TOKEN=ghp_16C7e42F292c6912E7710c838347Ae178B4a", []string{"GITHUB_TOKEN:ghp_16C7e42F292c6912E7710c838347Ae178B4a"}},
		{"github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH", []string{"GITHUB_TOKEN:github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"}},
		{"slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", []string{"SLACK_TOKEN:xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"}},
		{"OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", []string{"OPENAI_API_KEY:sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"}},
		{"sk-T3BlbkFJabc123def456ghi789jkl012", []string{"OPENAI_API_KEY:sk-T3BlbkFJabc123def456ghi789jkl012"}},
		{"x-api-key: sk-ant-api03-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", []string{"ANTHROPIC_API_KEY:sk-ant-api03-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"}},
		{"stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", []string{"STRIPE_KEY:sk_live_4eC39HqLyjWDarjtT1zdp7dc"}},
		{`{"client_secret": "q8Zt2vX9mK4pR7wL1nB6yH3cF0sD5gJ"}`, []string{"GENERIC_SECRET:q8Zt2vX9mK4pR7wL1nB6yH3cF0sD5gJ"}},
		{"password=Tr0ub4dor&3xK9pLmQ2vW8zR5tY1", nil}, // & ends the value: too short
		{"api_key: 7f3a9c2e8b1d4f6a0c5e9b3d7a1f8c2e", []string{"GENERIC_SECRET:7f3a9c2e8b1d4f6a0c5e9b3d7a1f8c2e"}},
		// Not secrets.
		{"we use sk-learn and scikit; the task-force met", nil},
		{"api_key=short and token: abc", nil},
		{"idempotency_key: 3f2b8a1c-9d4e-4f6a-8b2c-1d3e5f7a9b0c", nil},
		{"secret=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", nil},
		{"the bearer of this letter is welcome", nil},
		{"AKIAIOSFODNN7EXAMPLEX is too long", nil},
	} {
		got := found(tc.text, r.Scan(tc.text))
		if !same(got, tc.want) {
			t.Errorf("%q: found %q, want %q", tc.text, got, tc.want)
		}
	}
}

func TestEntropy(t *testing.T) {
	if e := entropy("aaaaaaaa"); e != 0 {
		t.Errorf("entropy of one repeated byte = %v", e)
	}
	if e := entropy("abcdefghijklmnop"); e != 4 {
		t.Errorf("entropy of 16 distinct bytes = %v, want 4", e)
	}
}
