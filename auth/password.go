package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// argonParams are argon2id cost parameters.
type argonParams struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
	KeyLen  uint32
}

// defaultArgon is the OWASP Password Storage Cheat Sheet's argon2id baseline
// (m=19 MiB, t=2, p=1). New hashes use it; hashes with other parameters are
// re-hashed with it at the next successful login.
var defaultArgon = argonParams{Memory: 19 * 1024, Time: 2, Threads: 1, KeyLen: 32}

const argonSaltLen = 16

// Bounds on imported or stored hashes, so that a hand-edited or imported row
// cannot make one login cost gigabytes or minutes.
const (
	maxArgonMemory  = 256 * 1024 // KiB
	maxArgonTime    = 16
	maxArgonThreads = 16
	minBcryptCost   = 4
	maxBcryptCost   = 15
	// maxPassword bounds what Authenticate hashes; longer input fails.
	maxPassword = 1024
)

var b64 = base64.RawStdEncoding

// hashPassword returns an argon2id PHC string:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash> (unpadded standard base64).
func hashPassword(password string, p argonParams) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// parseArgon2id parses and bounds-checks an argon2id PHC string.
func parseArgon2id(s string) (p argonParams, salt, key []byte, err error) {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" {
		return p, nil, nil, fmt.Errorf("%w: not an argon2id PHC string", ErrInvalidHash)
	}
	if f[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("%w: argon2 version %q", ErrInvalidHash, f[2])
	}
	var m, t, th uint64
	seen := 0
	for _, kv := range strings.Split(f[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return p, nil, nil, fmt.Errorf("%w: argon2 parameter %q", ErrInvalidHash, kv)
		}
		n, perr := strconv.ParseUint(v, 10, 32)
		if perr != nil {
			return p, nil, nil, fmt.Errorf("%w: argon2 parameter %q", ErrInvalidHash, kv)
		}
		switch k {
		case "m":
			m, seen = n, seen|1
		case "t":
			t, seen = n, seen|2
		case "p":
			th, seen = n, seen|4
		default:
			return p, nil, nil, fmt.Errorf("%w: argon2 parameter %q", ErrInvalidHash, kv)
		}
	}
	if seen != 7 {
		return p, nil, nil, fmt.Errorf("%w: argon2 parameters %q", ErrInvalidHash, f[3])
	}
	if t < 1 || t > maxArgonTime || th < 1 || th > maxArgonThreads || m < 8*th || m > maxArgonMemory {
		return p, nil, nil, fmt.Errorf("%w: argon2 parameters %q out of range", ErrInvalidHash, f[3])
	}
	salt, err = b64.DecodeString(f[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return p, nil, nil, fmt.Errorf("%w: argon2 salt", ErrInvalidHash)
	}
	key, err = b64.DecodeString(f[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, fmt.Errorf("%w: argon2 hash", ErrInvalidHash)
	}
	p = argonParams{Memory: uint32(m), Time: uint32(t), Threads: uint8(th), KeyLen: uint32(len(key))}
	return p, salt, key, nil
}

// isBcrypt reports whether s looks like a bcrypt hash we verify.
func isBcrypt(s string) bool {
	return strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")
}

// checkHash validates a stored or imported hash without verifying anything.
func checkHash(s string) error {
	if isBcrypt(s) {
		cost, err := bcrypt.Cost([]byte(s))
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidHash, err)
		}
		if cost < minBcryptCost || cost > maxBcryptCost {
			return fmt.Errorf("%w: bcrypt cost %d out of range %d–%d", ErrInvalidHash, cost, minBcryptCost, maxBcryptCost)
		}
		return nil
	}
	_, _, _, err := parseArgon2id(s)
	return err
}

// verifyPassword checks password against a stored hash. rehash is true when
// the password matched but the hash is not argon2id with defaultArgon (an
// imported bcrypt hash, or older parameters). err is only for a malformed
// hash.
func verifyPassword(stored, password string, want argonParams) (ok, rehash bool, err error) {
	if isBcrypt(stored) {
		if err := checkHash(stored); err != nil {
			return false, false, err
		}
		err := bcrypt.CompareHashAndPassword([]byte(stored), []byte(password))
		if err == nil {
			return true, true, nil
		}
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return false, false, nil
		}
		// bcrypt refuses passwords over 72 bytes: a mismatch, not a bad hash.
		if errors.Is(err, bcrypt.ErrPasswordTooLong) {
			return false, false, nil
		}
		return false, false, fmt.Errorf("%w: %v", ErrInvalidHash, err)
	}
	p, salt, key, err := parseArgon2id(stored)
	if err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	if subtle.ConstantTimeCompare(got, key) != 1 {
		return false, false, nil
	}
	return true, p != want, nil
}
