package web

import (
	"errors"
	"net/http"

	"github.com/posthouse/posthouse/auth"
)

// home sends a logged-in user to their start page.
func (s *Server) home(q *request) error {
	to := "/login"
	if q.sess != nil && q.sess.stage == stageFull {
		to = "/account"
		if u, err := s.opts.Accounts.User(q.ctx(), q.sess.address); err == nil && u.Admin && q.admin {
			to = "/admin"
		}
	}
	http.Redirect(q.w, q.r, to, http.StatusSeeOther)
	return nil
}

// loginForm shows the login form. It has no session yet, so its CSRF token
// lives in a cookie of its own and must come back in the form (double
// submit); SameSite=Strict keeps other sites from sending either.
func (s *Server) loginForm(q *request) error {
	if q.sess != nil && q.sess.stage == stageFull {
		return s.home(q)
	}
	s.showLogin(q, http.StatusOK, "")
	return nil
}

func (s *Server) showLogin(q *request, status int, msg string) {
	token := cookieValue(q.r, loginCookie)
	if len(token) != 43 {
		token = randomToken()
		setCookie(q.w, q.r, loginCookie, token, codeStageTTL*2)
	}
	s.render(q, status, "login", pageData{Title: "Log in", CSRF: token, Error: msg})
}

func (s *Server) login(q *request) error {
	if !sameToken(q.r.PostFormValue("csrf"), cookieValue(q.r, loginCookie)) {
		s.showLogin(q, http.StatusForbidden, "The login form expired; please try again.")
		return nil
	}
	address, password := q.form("address"), q.r.PostFormValue("password")
	if address == "" || password == "" {
		s.showLogin(q, http.StatusBadRequest, "Enter your address and password.")
		return nil
	}
	remote := remoteAddr(q.r)
	u, err := s.opts.Accounts.AuthenticateWeb(q.ctx(), address, password, remote)
	switch {
	case errors.Is(err, auth.ErrThrottled):
		s.log.Warn("web login throttled", "user", address, "remote", remote.String())
		s.showLogin(q, http.StatusTooManyRequests, "Too many failed attempts. Wait a few minutes, then try again.")
		return nil
	case errors.Is(err, auth.ErrBadCredentials):
		s.log.Info("web login failed", "user", address, "remote", remote.String())
		s.showLogin(q, http.StatusUnauthorized, "Wrong address or password.")
		return nil
	case err != nil:
		return err
	}
	// A new session id at every step of login: an id an attacker planted
	// before login is never promoted.
	if q.sess != nil {
		s.sessions.remove(q.sess)
	}
	if u.TOTP {
		id, _ := s.sessions.create(u.Address, stagePassword)
		setCookie(q.w, q.r, sessionCookie, id, codeStageTTL)
		http.Redirect(q.w, q.r, "/login/code", http.StatusSeeOther)
		return nil
	}
	s.loggedIn(q, u.Address)
	return nil
}

func (s *Server) loggedIn(q *request, address string) {
	id, _ := s.sessions.create(address, stageFull)
	setCookie(q.w, q.r, sessionCookie, id, s.opts.SessionMax)
	setCookie(q.w, q.r, loginCookie, "", -1)
	s.log.Info("web login", "user", address, "remote", remoteAddr(q.r).String())
	q.sess = nil
	// The https listener serves only /account (and not "/").
	to := "/account"
	if q.admin {
		to = "/"
	}
	http.Redirect(q.w, q.r, to, http.StatusSeeOther)
}

// codeForm asks for the second factor after the password.
func (s *Server) codeForm(q *request) error {
	if q.sess == nil || q.sess.stage != stagePassword {
		http.Redirect(q.w, q.r, "/login", http.StatusSeeOther)
		return nil
	}
	s.showCode(q, http.StatusOK, "")
	return nil
}

func (s *Server) showCode(q *request, status int, msg string) {
	s.render(q, status, "code", pageData{Title: "Second factor", CSRF: q.sess.csrf, Error: msg})
}

func (s *Server) code(q *request) error {
	if q.sess == nil || q.sess.stage != stagePassword {
		s.fail(q, http.StatusForbidden, "The login took too long; log in again.")
		return nil
	}
	if !sameToken(q.r.PostFormValue("csrf"), q.sess.csrf) {
		s.showCode(q, http.StatusForbidden, "The form expired; please try again.")
		return nil
	}
	code := q.form("code")
	if code == "" || len(code) > 64 {
		s.showCode(q, http.StatusBadRequest, "Enter the 6-digit code from your app, or a recovery code.")
		return nil
	}
	remote := remoteAddr(q.r)
	err := s.opts.Accounts.VerifySecondFactor(q.ctx(), q.sess.address, code, remote)
	switch {
	case errors.Is(err, auth.ErrThrottled):
		s.showCode(q, http.StatusTooManyRequests, "Too many failed attempts. Wait a few minutes, then try again.")
		return nil
	case errors.Is(err, ErrBadCode):
		s.log.Info("web second factor failed", "user", q.sess.address, "remote", remote.String())
		s.showCode(q, http.StatusUnauthorized, "Wrong code, or a code already used. Try the next one.")
		return nil
	case err != nil:
		return err
	}
	address := q.sess.address
	s.sessions.remove(q.sess)
	s.loggedIn(q, address)
	return nil
}

func (s *Server) logout(q *request) error {
	if q.sess != nil {
		if !sameToken(q.r.PostFormValue("csrf"), q.sess.csrf) {
			s.fail(q, http.StatusForbidden, "This form has expired; reload the page and try again.")
			return nil
		}
		s.sessions.remove(q.sess)
		s.log.Info("web logout", "user", q.sess.address, "remote", remoteAddr(q.r).String())
	}
	setCookie(q.w, q.r, sessionCookie, "", -1)
	http.Redirect(q.w, q.r, "/login", http.StatusSeeOther)
	return nil
}
