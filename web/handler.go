package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/posthouse/posthouse/auth"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// securityHeaders go on every response. The CSP allows our own style sheet
// and the QR code's data: image, and no script at all.
var securityHeaders = map[string]string{
	"Content-Security-Policy":      "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	"X-Frame-Options":              "DENY",
	"X-Content-Type-Options":       "nosniff",
	"Referrer-Policy":              "same-origin",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
}

func staticHandler() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range securityHeaders {
			w.Header().Set(k, v)
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"date": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Local().Format(time.DateOnly)
	},
	"bytes":      formatBytes,
	"join":       strings.Join,
	"pathescape": url.PathEscape,
	// withCSRF hands a partial the shape of pageData.
	"withCSRF": func(csrf string, data any) map[string]any { return map[string]any{"CSRF": csrf, "Data": data} },
}

// parsePages parses layout.html with each page: pages[name] renders
// "layout" around that page's "content".
func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" || name == "partials" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", n, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// request is one request with its session and user (the user only once
// needUser has run).
type request struct {
	w    http.ResponseWriter
	r    *http.Request
	sess *session
	user User
	// admin: the request came to the admin listener (AdminHandler), where
	// the admin pages exist.
	admin bool
}

func (q *request) ctx() context.Context { return q.r.Context() }

// form returns a form field, trimmed.
func (q *request) form(name string) string { return strings.TrimSpace(q.r.PostFormValue(name)) }

type handler func(q *request) error

// wrap gives every page the security headers, a body limit, a deadline,
// and the session from the cookie if there is one. A returned error is
// ours: logged, and the client sees a generic page.
func (s *Server) wrap(admin bool, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range securityHeaders {
			w.Header().Set(k, v)
		}
		w.Header().Set("Cache-Control", "no-store")
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		q := &request{w: w, r: r, sess: s.sessions.get(cookieValue(r, sessionCookie)), admin: admin}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				s.fail(q, http.StatusRequestEntityTooLarge, "The form is too large or malformed; nothing was changed.")
				return
			}
			if !sameOrigin(r) {
				s.fail(q, http.StatusForbidden, "This form came from another site; nothing was changed.")
				return
			}
		}
		if err := h(q); err != nil {
			s.log.Error("web request", "path", r.URL.Path, "remote", remoteAddr(r).String(), "err", err)
			s.fail(q, http.StatusInternalServerError, "Something went wrong on the server; nothing may have been changed. The log says more.")
		}
	})
}

// sameOrigin refuses a POST whose Origin header names another site (a
// browser sends it with every form post); SameSite=Strict and the CSRF
// token refuse the rest. "null" (a privacy-restricted context) passes only
// when the browser also says the request is same-origin (Fetch Metadata).
func sameOrigin(r *http.Request) bool {
	switch o := r.Header.Get("Origin"); o {
	case "":
		return true
	case "null":
		return r.Header.Get("Sec-Fetch-Site") == "same-origin"
	default:
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
}

// needUser requires a logged-in, enabled user and, for POST, the session's
// CSRF token.
func (s *Server) needUser(h handler) handler {
	return func(q *request) error {
		if q.sess == nil || q.sess.stage != stageFull {
			if q.r.Method == http.MethodGet {
				http.Redirect(q.w, q.r, "/login", http.StatusSeeOther)
				return nil
			}
			s.fail(q, http.StatusForbidden, "Your session has ended; log in again. Nothing was changed.")
			return nil
		}
		u, err := s.opts.Accounts.User(q.ctx(), q.sess.address)
		if errors.Is(err, auth.ErrNoSuchUser) || err == nil && u.Disabled {
			s.sessions.remove(q.sess)
			q.sess = nil
			http.Redirect(q.w, q.r, "/login", http.StatusSeeOther)
			return nil
		}
		if err != nil {
			return err
		}
		q.user = u
		if q.r.Method == http.MethodPost && !sameToken(q.r.PostFormValue("csrf"), q.sess.csrf) {
			s.log.Warn("web: form without its CSRF token", "user", u.Address, "path", q.r.URL.Path, "remote", remoteAddr(q.r).String())
			s.fail(q, http.StatusForbidden, "This form has expired or did not come from this site; reload the page and try again. Nothing was changed.")
			return nil
		}
		return h(q)
	}
}

// needAdmin requires needUser and the admin role.
func (s *Server) needAdmin(h handler) handler {
	return s.needUser(func(q *request) error {
		if !q.user.Admin {
			s.log.Warn("web: admin page refused", "user", q.user.Address, "path", q.r.URL.Path, "remote", remoteAddr(q.r).String())
			s.fail(q, http.StatusForbidden, "This page is for administrators.")
			return nil
		}
		return h(q)
	})
}

// audit logs an admin action: who did what to what.
func (s *Server) audit(q *request, action string, args ...any) {
	s.log.Info("admin action", append([]any{"user", q.user.Address, "action", action, "remote", remoteAddr(q.r).String()}, args...)...)
}

// pageData is what every template gets.
type pageData struct {
	// AdminSite: the page is on the admin listener, so the admin pages
	// are linked (for admins).
	AdminSite bool
	Title     string
	User      *User
	CSRF      string
	Flash     string
	Error     string
	Data      any
}

// render writes page with status. Templates render into a buffer first,
// so a template error never sends half a page.
func (s *Server) render(q *request, status int, page string, d pageData) {
	t := s.pages[page]
	d.AdminSite = q.admin
	if q.sess != nil && q.sess.stage == stageFull {
		if d.User == nil && q.user.Address != "" {
			u := q.user
			d.User = &u
		}
		d.CSRF = q.sess.csrf
		if d.Flash == "" {
			d.Flash = s.sessions.takeFlash(q.sess)
		}
	}
	var buf bytes.Buffer
	if t == nil {
		s.log.Error("web: no template", "page", page)
		http.Error(q.w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", d); err != nil {
		s.log.Error("web: template", "page", page, "err", err)
		http.Error(q.w, "internal error", http.StatusInternalServerError)
		return
	}
	q.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	q.w.WriteHeader(status)
	q.w.Write(buf.Bytes())
}

// fail shows msg on an error page.
func (s *Server) fail(q *request, status int, msg string) {
	s.render(q, status, "error", pageData{Title: http.StatusText(status), Error: msg})
}

// done ends a successful POST: a one-time message and a redirect (the
// message is in the session, never in the URL).
func (s *Server) done(q *request, to, msg string) error {
	s.sessions.setFlash(q.sess, msg)
	http.Redirect(q.w, q.r, to, http.StatusSeeOther)
	return nil
}

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
