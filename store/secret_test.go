package store_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	"tollgate/store"
	"tollgate/store/storetest"
)

// keyBytes is a 32-byte AES key different from storetest.SecretKey.
var keyBytes = []byte("0123456789abcdefghijklmnopqrstuv")

func mustSealer(t *testing.T, key string) *store.Sealer {
	t.Helper()
	s, err := store.NewSealer(key)
	if err != nil {
		t.Fatalf("NewSealer(%q): %v", key, err)
	}
	return s
}

func TestSealerRoundTrip(t *testing.T) {
	s := mustSealer(t, storetest.SecretKey)
	for _, plain := range []string{"sk-proj-0123456789abcdef", "", "ключ with ünïcode and spaces", strings.Repeat("x", 4096)} {
		sealed, err := s.Seal(plain)
		if err != nil {
			t.Fatalf("Seal(%q): %v", plain, err)
		}
		if plain != "" && bytes.Contains(sealed, []byte(plain)) {
			t.Errorf("sealed value contains the plaintext %q", plain)
		}
		// 12-byte nonce + ciphertext + 16-byte GCM tag.
		if want := 12 + len(plain) + 16; len(sealed) != want {
			t.Errorf("len(Seal(%d bytes)) = %d, want %d", len(plain), len(sealed), want)
		}
		got, err := s.Open(sealed)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if got != plain {
			t.Errorf("Open(Seal(%q)) = %q", plain, got)
		}
	}
}

func TestSealerOpenRejects(t *testing.T) {
	s := mustSealer(t, storetest.SecretKey)
	other := mustSealer(t, hex.EncodeToString(keyBytes))
	sealed, err := s.Seal("provider-secret")
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 0x01

	for _, tc := range []struct {
		name    string
		sealer  *store.Sealer
		sealed  []byte
		wantMsg string
	}{
		{"wrong key", other, sealed, "TOLLGATE_SECRET_KEY"},
		{"tampered ciphertext", s, tampered, "decrypt"},
		{"too short", s, sealed[:11], "too short"},
		{"empty", s, nil, "too short"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.sealer.Open(tc.sealed)
			if err == nil {
				t.Fatalf("Open succeeded with %q, want an error", got)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tc.wantMsg)
			}
		})
	}
}

func TestNewSealerKeyFormats(t *testing.T) {
	hexKey := hex.EncodeToString(keyBytes)
	b64Key := base64.StdEncoding.EncodeToString(keyBytes)
	t.Run("hex and base64 of the same bytes are the same key", func(t *testing.T) {
		sealed, err := mustSealer(t, hexKey).Seal("same key")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{b64Key, strings.ToUpper(hexKey), "  " + hexKey + "\n"} {
			got, err := mustSealer(t, k).Open(sealed)
			if err != nil || got != "same key" {
				t.Errorf("key %q: Open = %q, %v; want the sealed text", k, got, err)
			}
		}
	})

	for _, tc := range []struct{ name, key string }{
		{"empty", ""},
		{"hex of 31 bytes", hexKey[:62]},
		{"hex of 33 bytes", hexKey + "ab"},
		{"hex with a non-hex char", hexKey[:63] + "g"},
		{"base64 of 16 bytes", base64.StdEncoding.EncodeToString(keyBytes[:16])},
		{"base64 of 31 bytes", base64.StdEncoding.EncodeToString(keyBytes[:31])},
		{"64 chars of base64 (48 bytes)", strings.Repeat("g", 64)},
		{"raw passphrase of 32 chars", string(keyBytes)},
	} {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			s, err := store.NewSealer(tc.key)
			if err == nil {
				t.Fatalf("NewSealer(%q) = %v, want an error", tc.key, s)
			}
			for _, want := range []string{"32 bytes", "64 hex characters", "base64", "openssl rand -hex 32"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestSealUsesRandomNonce(t *testing.T) {
	s := mustSealer(t, storetest.SecretKey)
	a, err := s.Seal("same text")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Seal("same text")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same text are identical")
	}
	if bytes.Equal(a[:12], b[:12]) {
		t.Error("two seals share a nonce")
	}
	for _, sealed := range [][]byte{a, b} {
		if got, err := s.Open(sealed); err != nil || got != "same text" {
			t.Errorf("Open = %q, %v", got, err)
		}
	}
}

func TestHashKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	} {
		if got := store.HashKey(tc.in); got != tc.want {
			t.Errorf("HashKey(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if store.HashKey("sk-a") == store.HashKey("sk-b") {
		t.Error("different secrets hash the same")
	}
}

func TestNewKeySecret(t *testing.T) {
	shape := regexp.MustCompile(`^sk-[A-Za-z0-9_-]{32}$`)
	seen := map[string]bool{}
	for range 1000 {
		s, err := store.NewKeySecret()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(s, "sk-") || !shape.MatchString(s) {
			t.Fatalf("NewKeySecret() = %q, want sk- and 32 base64url characters", s)
		}
		if seen[s] {
			t.Fatalf("NewKeySecret() repeated %q", s)
		}
		seen[s] = true
	}
}

func TestSecretHint(t *testing.T) {
	for _, tc := range []struct{ secret, want string }{
		{"sk-abcdefgh1234", "sk-…1234"},
		{"sk-proj-abcdefghWXYZ", "sk-…WXYZ"},
		{"prov-upstream-credential-0123456789", "prov-…6789"},
		{"nodashsecret9876", "…9876"},
		{"verylongprefix-abcd1234", "…1234"}, // dash too far in: no prefix shown
		{"token-abcdefgh1234", "…1234"},      // a five-letter prefix is not shown either
		{"-leading-dash-5678", "…5678"},
		{"12345678", "…5678"},
		{"short", "…"},
		{"", "…"},
	} {
		if got := store.SecretHint(tc.secret); got != tc.want {
			t.Errorf("SecretHint(%q) = %q, want %q", tc.secret, got, tc.want)
		}
	}

	for range 20 {
		secret, err := store.NewKeySecret()
		if err != nil {
			t.Fatal(err)
		}
		hint := store.SecretHint(secret)
		if want := "sk-…" + secret[len(secret)-4:]; hint != want {
			t.Errorf("SecretHint(%q) = %q, want %q", secret, hint, want)
		}
		if strings.Contains(hint, secret[3:len(secret)-4]) {
			t.Errorf("hint %q reveals the middle of the secret", hint)
		}
	}
}
