package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Sealer encrypts provider credentials at rest with AES-256-GCM.
type Sealer struct{ aead cipher.AEAD }

// NewSealer takes the 32-byte key as 64 hex characters or standard base64.
func NewSealer(key string) (*Sealer, error) {
	raw, err := decodeKey(strings.TrimSpace(key))
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

func decodeKey(key string) ([]byte, error) {
	if b, err := hex.DecodeString(key); err == nil && len(b) == 32 {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(key); err == nil && len(b) == 32 {
		return b, nil
	}
	return nil, errors.New("must be 32 bytes written as 64 hex characters or base64 (generate one with: openssl rand -hex 32)")
}

// Seal encrypts plaintext; the random nonce is prepended.
func (s *Sealer) Seal(plaintext string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, []byte(plaintext), nil), nil
}

// Open decrypts what Seal produced.
func (s *Sealer) Open(sealed []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", errors.New("sealed value too short")
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], nil)
	if err != nil {
		return "", fmt.Errorf("decrypt credential (was TOLLGATE_SECRET_KEY changed?): %w", err)
	}
	return string(plain), nil
}

// SecretHint shows only enough of a secret to recognise it: "sk-…abcd".
func SecretHint(secret string) string {
	if len(secret) < 8 {
		return "…"
	}
	prefix := ""
	if i := strings.Index(secret, "-"); i > 0 && i <= 4 {
		prefix = secret[:i+1]
	}
	return prefix + "…" + secret[len(secret)-4:]
}

// HashKey is how a virtual key is stored and looked up.
func HashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewKeySecret makes a fresh virtual key: "sk-" and 32 random base64url characters.
func NewKeySecret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "sk-" + base64.RawURLEncoding.EncodeToString(b), nil
}
