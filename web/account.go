package web

import (
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/sievestore"
)

func (s *Server) accountRoutes(mux *http.ServeMux, wrap func(handler) http.Handler) {
	mux.Handle("GET /account", wrap(s.needUser(s.account)))
	mux.Handle("POST /account/password", wrap(s.needUser(s.changePassword)))
	mux.Handle("POST /account/app-passwords", wrap(s.needUser(s.createAppPassword)))
	mux.Handle("POST /account/app-passwords/revoke", wrap(s.needUser(s.revokeAppPassword)))
	mux.Handle("GET /account/2fa", wrap(s.needUser(s.totpPage)))
	mux.Handle("POST /account/2fa/enable", wrap(s.needUser(s.enableTOTP)))
	mux.Handle("POST /account/2fa/disable", wrap(s.needUser(s.disableTOTP)))
	mux.Handle("GET /account/vacation", wrap(s.needUser(s.accountVacation)))
	mux.Handle("POST /account/vacation", wrap(s.needUser(s.setAccountVacation)))
	mux.Handle("POST /account/vacation/off", wrap(s.needUser(s.accountVacationOff)))
}

type accountData struct {
	Used, Limit  int64
	UsageKnown   bool
	AppPasswords []AppPassword
	NewName      string
	NewSecret    string // shown once, right after creation
	Vacation     *sievestore.Vacation
}

func (s *Server) accountData(q *request) (*accountData, error) {
	d := &accountData{}
	if s.opts.Usage != nil {
		used, limit, err := s.opts.Usage(q.ctx(), q.user.Address)
		if err != nil {
			s.log.Error("web: usage", "user", q.user.Address, "err", err)
		} else {
			d.Used, d.Limit, d.UsageKnown = used, limit, true
		}
	}
	aps, err := s.opts.Accounts.AppPasswords(q.ctx(), q.user.Address)
	if err != nil {
		return nil, err
	}
	d.AppPasswords = aps
	v, err := s.opts.Sieve.Vacation(q.ctx(), q.user.Address)
	if err != nil && !errors.Is(err, sievestore.ErrNotFound) {
		return nil, err
	}
	d.Vacation = v
	return d, nil
}

func (s *Server) account(q *request) error {
	return s.showAccount(q, http.StatusOK, "", nil)
}

// showAccount renders the account page; edit, when set, fills in what the
// handler has to add (an error message keeps the form as it was).
func (s *Server) showAccount(q *request, status int, msg string, edit func(*accountData)) error {
	d, err := s.accountData(q)
	if err != nil {
		return err
	}
	if edit != nil {
		edit(d)
	}
	s.render(q, status, "account", pageData{Title: "Your account", Error: msg, Data: d})
	return nil
}

// checkNewPassword says what is wrong with a new password, "" if nothing.
func checkNewPassword(pw, confirm string) string {
	switch {
	case utf8.RuneCountInString(pw) < minPasswordLength:
		return fmt.Sprintf("The new password needs at least %d characters.", minPasswordLength)
	case len(pw) > 1024:
		return "The new password is too long (at most 1024 bytes)."
	case pw != confirm:
		return "The two new passwords differ."
	}
	return ""
}

func (s *Server) changePassword(q *request) error {
	current, pw, confirm := q.r.PostFormValue("current"), q.r.PostFormValue("new"), q.r.PostFormValue("confirm")
	if msg := checkNewPassword(pw, confirm); msg != "" {
		return s.showAccount(q, http.StatusBadRequest, msg, nil)
	}
	_, err := s.opts.Accounts.AuthenticateWeb(q.ctx(), q.user.Address, current, remoteAddr(q.r))
	switch {
	case errors.Is(err, auth.ErrThrottled):
		return s.showAccount(q, http.StatusTooManyRequests, "Too many failed attempts. Wait a few minutes, then try again.", nil)
	case errors.Is(err, auth.ErrBadCredentials):
		return s.showAccount(q, http.StatusBadRequest, "Your current password is not right; nothing was changed.", nil)
	case err != nil:
		return err
	}
	if err := s.opts.Accounts.SetPassword(q.ctx(), q.user.Address, pw); err != nil {
		return err
	}
	s.sessions.removeAddress(q.user.Address, q.sess)
	s.log.Info("web: password changed", "user", q.user.Address, "remote", remoteAddr(q.r).String())
	return s.done(q, "/account", "Your password is changed. Other browsers were logged out; app passwords still work.")
}

// checkName checks a device name: 1 to 64 printable characters.
func checkName(name string) string {
	if name == "" || utf8.RuneCountInString(name) > 64 {
		return "Give the device a name of 1 to 64 characters (\"Phone\", \"Laptop Thunderbird\")."
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return "The device name may hold only printable characters."
		}
	}
	return ""
}

func (s *Server) createAppPassword(q *request) error {
	name := q.form("name")
	if msg := checkName(name); msg != "" {
		return s.showAccount(q, http.StatusBadRequest, msg, func(d *accountData) { d.NewName = name })
	}
	ap, secret, err := s.opts.Accounts.CreateAppPassword(q.ctx(), q.user.Address, name)
	if errors.Is(err, ErrInvalidName) {
		return s.showAccount(q, http.StatusBadRequest, "That device name is not allowed; use letters, digits and spaces.", func(d *accountData) { d.NewName = name })
	}
	if errors.Is(err, ErrTooManyAppPasswords) {
		return s.showAccount(q, http.StatusBadRequest, "You have as many app passwords as allowed; revoke one you no longer use first.", nil)
	}
	if err != nil {
		return err
	}
	s.log.Info("web: app password created", "user", q.user.Address, "id", ap.ID, "name", ap.Name, "remote", remoteAddr(q.r).String())
	// Shown in this response only: no redirect, nothing kept.
	return s.showAccount(q, http.StatusOK, "", func(d *accountData) { d.NewSecret, d.NewName = secret, ap.Name })
}

func (s *Server) revokeAppPassword(q *request) error {
	id, err := strconv.ParseInt(q.form("id"), 10, 64)
	if err != nil || id <= 0 {
		return s.showAccount(q, http.StatusBadRequest, "No such app password; nothing was changed.", nil)
	}
	err = s.opts.Accounts.RevokeAppPassword(q.ctx(), q.user.Address, id)
	if errors.Is(err, ErrNoSuchAppPassword) {
		return s.showAccount(q, http.StatusNotFound, "No such app password; nothing was changed.", nil)
	}
	if err != nil {
		return err
	}
	s.log.Info("web: app password revoked", "user", q.user.Address, "id", id, "remote", remoteAddr(q.r).String())
	return s.done(q, "/account", "The app password is revoked: the device using it can no longer log in.")
}

type totpData struct {
	Enabled       bool
	Secret        string
	URI           string
	QR            template.URL // data:image/png;base64,…
	RecoveryCodes []string
}

func (s *Server) totpPage(q *request) error {
	return s.showTOTP(q, http.StatusOK, "")
}

// showTOTP shows the status, or while 2FA is off an enrolment form with a
// secret kept in the session until a code confirms it.
func (s *Server) showTOTP(q *request, status int, msg string) error {
	d := &totpData{Enabled: q.user.TOTP}
	if !d.Enabled {
		secret := s.sessions.totpSecret(q.sess)
		if secret == "" {
			var err error
			if secret, err = s.opts.Accounts.NewTOTPSecret(); err != nil {
				return err
			}
			s.sessions.setTOTPSecret(q.sess, secret)
		}
		d.Secret = secret
		d.URI = s.opts.Accounts.TOTPURI(s.issuer(), q.user.Address, secret)
		if png, err := qrcode.Encode(d.URI, qrcode.Medium, 256); err == nil {
			d.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
		}
	}
	s.render(q, status, "totp", pageData{Title: "Two-factor login", Error: msg, Data: d})
	return nil
}

func (s *Server) issuer() string {
	if s.opts.Hostname != "" {
		return "Posthouse " + s.opts.Hostname
	}
	return "Posthouse"
}

func (s *Server) enableTOTP(q *request) error {
	if q.user.TOTP {
		return s.done(q, "/account/2fa", "Two-factor login is already on.")
	}
	secret := s.sessions.totpSecret(q.sess)
	code := strings.ReplaceAll(q.form("code"), " ", "")
	if secret == "" {
		return s.showTOTP(q, http.StatusBadRequest, "The setup expired; scan the new code below.")
	}
	if len(code) != 6 || strings.Trim(code, "0123456789") != "" {
		return s.showTOTP(q, http.StatusBadRequest, "Enter the 6-digit code your app shows.")
	}
	codes, err := s.opts.Accounts.EnableTOTP(q.ctx(), q.user.Address, secret, code)
	if errors.Is(err, ErrBadCode) {
		return s.showTOTP(q, http.StatusBadRequest, "That code is not right. Check the phone's clock and try the next code.")
	}
	if err != nil {
		return err
	}
	s.sessions.setTOTPSecret(q.sess, "")
	s.log.Info("web: two-factor login enabled", "user", q.user.Address, "remote", remoteAddr(q.r).String())
	q.user.TOTP = true
	s.render(q, http.StatusOK, "totp", pageData{Title: "Two-factor login", Data: &totpData{Enabled: true, RecoveryCodes: codes},
		Flash: "Two-factor login is on. Mail apps keep working with app passwords."})
	return nil
}

func (s *Server) disableTOTP(q *request) error {
	if !q.user.TOTP {
		return s.done(q, "/account/2fa", "Two-factor login is already off.")
	}
	_, err := s.opts.Accounts.AuthenticateWeb(q.ctx(), q.user.Address, q.r.PostFormValue("password"), remoteAddr(q.r))
	switch {
	case errors.Is(err, auth.ErrThrottled):
		return s.showTOTP(q, http.StatusTooManyRequests, "Too many failed attempts. Wait a few minutes, then try again.")
	case errors.Is(err, auth.ErrBadCredentials):
		return s.showTOTP(q, http.StatusBadRequest, "Your password is not right; two-factor login stays on.")
	case err != nil:
		return err
	}
	if err := s.opts.Accounts.DisableTOTP(q.ctx(), q.user.Address); err != nil {
		return err
	}
	s.log.Info("web: two-factor login disabled", "user", q.user.Address, "remote", remoteAddr(q.r).String())
	return s.done(q, "/account/2fa", "Two-factor login is off.")
}

// vacationData fills the out-of-office form.
type vacationData struct {
	Account string
	Action  string // where the form posts
	Off     string // where "turn off" posts
	On      bool
	Subject string
	Message string
	From    string // YYYY-MM-DD
	Until   string
	Days    string
}

func vacationForm(v *sievestore.Vacation, account, action string) *vacationData {
	d := &vacationData{Account: account, Action: action, Off: action + "/off"}
	if v != nil {
		d.On, d.Subject, d.Message = true, v.Subject, v.Message
		d.From = dateString(v.Start, false)
		d.Until = dateString(v.End, true)
		if v.Period > 0 {
			d.Days = strconv.Itoa(int(v.Period / (24 * time.Hour)))
		}
	}
	return d
}

// dateString writes a bound as the form's date; End is the midnight after
// the last day.
func dateString(t time.Time, end bool) string {
	if t.IsZero() {
		return ""
	}
	if end {
		t = t.Add(-time.Second)
	}
	return t.Local().Format(time.DateOnly)
}

// parseVacation reads the out-of-office form; msg says what is wrong.
func parseVacation(q *request, maxBytes int) (v sievestore.Vacation, d *vacationData, msg string) {
	d = &vacationData{Subject: q.form("subject"), Message: q.r.PostFormValue("message"), From: q.form("from"), Until: q.form("until"), Days: q.form("days")}
	v.Subject = d.Subject
	v.Message = strings.TrimRight(strings.ReplaceAll(d.Message, "\r\n", "\n"), "\n") + "\n"
	switch {
	case v.Subject == "" || len(v.Subject) > 900 || strings.ContainsAny(v.Subject, "\r\n"):
		return v, d, "Give a subject of one line (at most 900 bytes)."
	case strings.TrimSpace(d.Message) == "":
		return v, d, "Write the message people will get."
	case len(v.Message) > maxBytes:
		return v, d, fmt.Sprintf("The message is too long (at most %d bytes).", maxBytes)
	}
	var err error
	if d.From != "" {
		if v.Start, err = time.ParseInLocation(time.DateOnly, d.From, time.Local); err != nil {
			return v, d, "The first day must be a date (YYYY-MM-DD)."
		}
	}
	if d.Until != "" {
		if v.End, err = time.ParseInLocation(time.DateOnly, d.Until, time.Local); err != nil {
			return v, d, "The last day must be a date (YYYY-MM-DD)."
		}
		v.End = v.End.AddDate(0, 0, 1)
	}
	if !v.Start.IsZero() && !v.End.IsZero() && !v.Start.Before(v.End) {
		return v, d, "The last day comes before the first."
	}
	if d.Days != "" {
		n, err := strconv.Atoi(d.Days)
		if err != nil || n < 1 || n > 365 {
			return v, d, "Answer the same sender again after 1 to 365 days."
		}
		v.Period = time.Duration(n) * 24 * time.Hour
	}
	return v, d, ""
}

func (s *Server) accountVacation(q *request) error {
	v, err := s.opts.Sieve.Vacation(q.ctx(), q.user.Address)
	if err != nil && !errors.Is(err, sievestore.ErrNotFound) {
		return err
	}
	s.render(q, http.StatusOK, "vacation", pageData{Title: "Out of office", Data: vacationForm(v, q.user.Address, "/account/vacation")})
	return nil
}

func (s *Server) setAccountVacation(q *request) error {
	v, d, msg := parseVacation(q, s.opts.Sieve.MaxScriptBytes())
	if msg != "" {
		d.Account, d.Action, d.Off = q.user.Address, "/account/vacation", "/account/vacation/off"
		s.render(q, http.StatusBadRequest, "vacation", pageData{Title: "Out of office", Error: msg + " Nothing was changed.", Data: d})
		return nil
	}
	if err := s.opts.Sieve.SetVacation(q.ctx(), q.user.Address, v); err != nil {
		return err
	}
	s.log.Info("web: out-of-office set", "user", q.user.Address, "remote", remoteAddr(q.r).String())
	return s.done(q, "/account/vacation", "Your out-of-office is on.")
}

func (s *Server) accountVacationOff(q *request) error {
	err := s.opts.Sieve.DeleteVacation(q.ctx(), q.user.Address)
	if err != nil && !errors.Is(err, sievestore.ErrNotFound) {
		return err
	}
	s.log.Info("web: out-of-office off", "user", q.user.Address, "remote", remoteAddr(q.r).String())
	return s.done(q, "/account/vacation", "Your out-of-office is off.")
}
