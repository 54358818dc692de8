package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// Session cookie and limits.
const (
	sessionCookie = "posthouse_session"
	loginCookie   = "posthouse_login" // CSRF token of the login form, before any session
	// codeStageTTL bounds the time between the password and the second
	// factor.
	codeStageTTL = 5 * time.Minute
	// maxSessions bounds the table: the oldest session goes first.
	maxSessions = 10_000
)

// stage is how far a session got through login.
type stage int

const (
	stagePassword stage = iota + 1 // password right, second factor due
	stageFull                      // logged in
)

// session is one browser's login, kept in memory only: the cookie holds a
// random id, the table its SHA-256, so neither a log nor a memory dump
// of the table gives a usable cookie. A restart logs everyone out.
type session struct {
	key     [sha256.Size]byte
	address string
	stage   stage
	csrf    string
	created time.Time
	seen    time.Time
	flash   string
	// totpSecret is a secret offered for enrolment, until confirmed with a
	// code; it never leaves memory except on the enrolment page.
	totpSecret string
}

type sessions struct {
	mu        sync.Mutex
	m         map[[sha256.Size]byte]*session
	idle, max time.Duration
	now       func() time.Time
}

func newSessions(idle, max time.Duration, now func() time.Time) *sessions {
	return &sessions{m: map[[sha256.Size]byte]*session{}, idle: idle, max: max, now: now}
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func keyOf(id string) [sha256.Size]byte { return sha256.Sum256([]byte(id)) }

// create starts a session and returns its cookie value.
func (ss *sessions) create(address string, st stage) (string, *session) {
	id := randomToken()
	now := ss.now()
	s := &session{key: keyOf(id), address: address, stage: st, csrf: randomToken(), created: now, seen: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.sweep(now)
	if len(ss.m) >= maxSessions {
		var oldest *session
		for _, o := range ss.m {
			if oldest == nil || o.created.Before(oldest.created) {
				oldest = o
			}
		}
		delete(ss.m, oldest.key)
	}
	ss.m[s.key] = s
	return id, s
}

func (ss *sessions) expired(s *session, now time.Time) bool {
	if s.stage == stagePassword {
		return now.Sub(s.created) > codeStageTTL
	}
	return now.Sub(s.seen) > ss.idle || now.Sub(s.created) > ss.max
}

// sweep drops expired sessions; ss.mu is held.
func (ss *sessions) sweep(now time.Time) {
	for k, s := range ss.m {
		if ss.expired(s, now) {
			delete(ss.m, k)
		}
	}
}

// get returns the live session of id, or nil, and marks it seen.
func (ss *sessions) get(id string) *session {
	if id == "" {
		return nil
	}
	k := keyOf(id)
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[k]
	if s == nil {
		return nil
	}
	if ss.expired(s, now) {
		delete(ss.m, k)
		return nil
	}
	s.seen = now
	return s
}

func (ss *sessions) remove(s *session) {
	ss.mu.Lock()
	delete(ss.m, s.key)
	ss.mu.Unlock()
}

// removeAddress ends every session of address but keep (a password change
// logs other browsers out).
func (ss *sessions) removeAddress(address string, keep *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for k, s := range ss.m {
		if s.address == address && s != keep {
			delete(ss.m, k)
		}
	}
}

// takeFlash returns and clears the session's one-time message.
func (ss *sessions) takeFlash(s *session) string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	f := s.flash
	s.flash = ""
	return f
}

func (ss *sessions) setFlash(s *session, msg string) {
	ss.mu.Lock()
	s.flash = msg
	ss.mu.Unlock()
}

func (ss *sessions) setTOTPSecret(s *session, secret string) {
	ss.mu.Lock()
	s.totpSecret = secret
	ss.mu.Unlock()
}

func (ss *sessions) totpSecret(s *session) string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return s.totpSecret
}

// setCookie sends a cookie: HttpOnly, SameSite=Strict, Secure over TLS;
// maxAge < 0 deletes it.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	}
	if maxAge < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, c)
}

func cookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// sameToken compares two tokens in constant time; empty never matches.
func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
