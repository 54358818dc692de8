package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"log/slog"
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

// session is one browser's login: the cookie holds a random id, the table
// its SHA-256, so neither a log nor the table gives a usable cookie. The
// table is in memory, written through to a SessionDB when there is one
// (sessions then survive a restart).
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
	// stored is the seen time last written to the SessionDB.
	stored time.Time
}

type sessions struct {
	mu        sync.Mutex
	m         map[[sha256.Size]byte]*session
	idle, max time.Duration
	now       func() time.Time
	db        *SessionDB // nil: memory only
	log       *slog.Logger
	swept     time.Time // last SessionDB sweep
}

func newSessions(idle, max time.Duration, now func() time.Time, db *SessionDB, log *slog.Logger) *sessions {
	return &sessions{m: map[[sha256.Size]byte]*session{}, idle: idle, max: max, now: now, db: db, log: log}
}

// persist runs a SessionDB write, if there is a SessionDB; a failure is
// logged (the session goes on in memory).
func (ss *sessions) persist(what string, fn func(ctx context.Context, db *SessionDB) error) {
	if ss.db == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := fn(ctx, ss.db); err != nil {
		ss.log.Error("web: session database", "op", what, "err", err)
	}
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
	s.stored = now
	ss.mu.Lock()
	ss.sweep(now)
	var evicted *session
	if len(ss.m) >= maxSessions {
		for _, o := range ss.m {
			if evicted == nil || o.created.Before(evicted.created) {
				evicted = o
			}
		}
		delete(ss.m, evicted.key)
	}
	ss.m[s.key] = s
	sweepDB := ss.db != nil && now.Sub(ss.swept) > time.Minute
	if sweepDB {
		ss.swept = now
	}
	ss.mu.Unlock()
	if evicted != nil {
		ss.persist("evict", func(ctx context.Context, db *SessionDB) error { return db.remove(ctx, evicted.key) })
	}
	if sweepDB {
		ss.persist("sweep", func(ctx context.Context, db *SessionDB) error { return db.sweep(ctx, now, ss.idle, ss.max) })
	}
	ss.persist("create", func(ctx context.Context, db *SessionDB) error { return db.put(ctx, s) })
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
	s := ss.m[k]
	ss.mu.Unlock()
	if ss.db != nil && ss.db.shared {
		// Other nodes use the session too: the database says whether it
		// still exists (a logout or password change there ends it here)
		// and when it was last seen.
		var err error
		if s, err = ss.refresh(k); err != nil {
			ss.log.Error("web: session database", "op", "refresh", "err", err)
			return nil
		}
	} else if s == nil && ss.db != nil {
		// Made before a restart, or by the other listener's process.
		var err error
		s, err = ss.load(k)
		if err != nil {
			ss.log.Error("web: session database", "op", "load", "err", err)
			return nil
		}
	}
	if s == nil {
		return nil
	}
	ss.mu.Lock()
	if ss.expired(s, now) {
		delete(ss.m, k)
		ss.mu.Unlock()
		ss.persist("expire", func(ctx context.Context, db *SessionDB) error { return db.remove(ctx, k) })
		return nil
	}
	s.seen = now
	write := now.Sub(s.stored) >= seenWrite
	if write {
		s.stored = now
	}
	ss.mu.Unlock()
	if write {
		ss.persist("touch", func(ctx context.Context, db *SessionDB) error { return db.touch(ctx, k, now) })
	}
	return s
}

// load reads a session from the SessionDB into the table.
func (ss *sessions) load(k [sha256.Size]byte) (*session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := ss.db.get(ctx, k)
	if err != nil || s == nil {
		return nil, err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if cur := ss.m[k]; cur != nil {
		return cur, nil
	}
	ss.m[k] = s
	return s, nil
}

// refresh reads a session from a shared SessionDB: nil (and dropped from
// the table) when it is gone; else the table's entry, which keeps what
// only memory holds, seen as late as either says.
func (ss *sessions) refresh(k [sha256.Size]byte) (*session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fresh, err := ss.db.get(ctx, k)
	if err != nil {
		return nil, err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	cur := ss.m[k]
	switch {
	case fresh == nil:
		delete(ss.m, k)
		return nil, nil
	case cur == nil:
		ss.m[k] = fresh
		return fresh, nil
	}
	if fresh.seen.After(cur.seen) {
		cur.seen = fresh.seen
	}
	if fresh.stored.After(cur.stored) {
		cur.stored = fresh.stored
	}
	return cur, nil
}

func (ss *sessions) remove(s *session) {
	ss.mu.Lock()
	delete(ss.m, s.key)
	ss.mu.Unlock()
	ss.persist("remove", func(ctx context.Context, db *SessionDB) error { return db.remove(ctx, s.key) })
}

// removeAddress ends every session of address but keep (a password change
// logs other browsers out).
func (ss *sessions) removeAddress(address string, keep *session) {
	ss.mu.Lock()
	for k, s := range ss.m {
		if s.address == address && s != keep {
			delete(ss.m, k)
		}
	}
	ss.mu.Unlock()
	var keepKey [sha256.Size]byte
	if keep != nil {
		keepKey = keep.key
	}
	ss.persist("remove address", func(ctx context.Context, db *SessionDB) error { return db.removeAddress(ctx, address, keepKey) })
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
