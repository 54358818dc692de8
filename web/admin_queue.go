package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/posthouse/posthouse/dkim"
	"github.com/posthouse/posthouse/dnscheck"
	"github.com/posthouse/posthouse/queue"
)

func (s *Server) queueRoutes(mux *http.ServeMux, a func(handler) http.Handler) {
	if s.opts.Queue == nil {
		return
	}
	mux.Handle("GET /admin/queue", a(s.queueList))
	mux.Handle("POST /admin/queue/retry-all", a(s.queueRetryAll))
	mux.Handle("GET /admin/queue/{id}", a(s.queueShow))
	mux.Handle("POST /admin/queue/{id}/retry", a(s.queueRetry))
	mux.Handle("POST /admin/queue/{id}/remove", a(s.queueRemove))
}

func (s *Server) queueList(q *request) error {
	msgs, err := s.opts.Queue.List(q.ctx())
	if err != nil {
		return err
	}
	rows := make([]queueRow, len(msgs))
	for i, m := range msgs {
		rows[i] = summarize(m)
	}
	s.render(q, http.StatusOK, "queue", pageData{Title: "Queue", Data: rows})
	return nil
}

// queueMessage reads {id}; false (after an error page) when it is bad or
// gone.
func (s *Server) queueMessage(q *request) (queue.Message, bool, error) {
	id, err := queue.ParseID(q.r.PathValue("id"))
	if err != nil {
		s.fail(q, http.StatusNotFound, "That is not a queue id (16 hex digits).")
		return queue.Message{}, false, nil
	}
	m, err := s.opts.Queue.Get(q.ctx(), id)
	if errors.Is(err, queue.ErrNotFound) {
		s.fail(q, http.StatusNotFound, "The message is no longer in the queue (delivered, bounced or removed).")
		return queue.Message{}, false, nil
	}
	return m, err == nil, err
}

func (s *Server) queueShow(q *request) error {
	m, ok, err := s.queueMessage(q)
	if !ok {
		return err
	}
	s.render(q, http.StatusOK, "queuemsg", pageData{Title: "Queued message " + m.ID, Data: summarize(m)})
	return nil
}

func (s *Server) queueRetry(q *request) error {
	m, ok, err := s.queueMessage(q)
	if !ok {
		return err
	}
	n, err := s.opts.Queue.Retry(q.ctx(), m.ID)
	if errors.Is(err, queue.ErrNotFound) {
		return s.done(q, "/admin/queue", "The message left the queue meanwhile.")
	}
	if err != nil {
		return err
	}
	s.audit(q, "queue retry", "queueid", m.ID, "rcpt", n)
	return s.done(q, "/admin/queue/"+m.ID, fmt.Sprintf("%d recipient(s) due now; the server tries them within %s.", n, queue.DefaultPollInterval))
}

func (s *Server) queueRetryAll(q *request) error {
	n, err := s.opts.Queue.Retry(q.ctx(), "")
	if err != nil {
		return err
	}
	s.audit(q, "queue retry all", "rcpt", n)
	return s.done(q, "/admin/queue", fmt.Sprintf("%d recipient(s) due now; the server tries them within %s.", n, queue.DefaultPollInterval))
}

func (s *Server) queueRemove(q *request) error {
	m, ok, err := s.queueMessage(q)
	if !ok {
		return err
	}
	err = s.opts.Queue.Remove(q.ctx(), m.ID)
	if err != nil && !errors.Is(err, queue.ErrNotFound) {
		return err
	}
	s.audit(q, "queue remove", "queueid", m.ID)
	return s.done(q, "/admin/queue", "Removed "+m.ID+" without delivering it or sending a bounce.")
}

func (s *Server) dkimRoutes(mux *http.ServeMux, a func(handler) http.Handler) {
	if s.opts.DKIM == nil {
		return
	}
	mux.Handle("GET /admin/dkim", a(s.dkimList))
	mux.Handle("POST /admin/dkim/generate", a(s.dkimGenerate))
	mux.Handle("POST /admin/dkim/remove", a(s.dkimRemove))
}

type dkimRow struct {
	dkim.Key
	Record string
}

type dkimData struct {
	Keys []dkimRow
	Form struct{ Domain, Selector, Algorithm string }
	New  string // the record of a key just made
}

func (s *Server) dkimList(q *request) error { return s.showDKIM(q, http.StatusOK, "", nil) }

func (s *Server) showDKIM(q *request, status int, msg string, edit func(*dkimData)) error {
	keys, err := s.opts.DKIM.List(q.ctx(), "")
	if err != nil {
		return err
	}
	d := &dkimData{}
	for _, k := range keys {
		d.Keys = append(d.Keys, dkimRow{Key: k, Record: k.ZoneRecord()})
	}
	d.Form.Algorithm = dkim.AlgorithmRSA
	if edit != nil {
		edit(d)
	}
	s.render(q, status, "dkim", pageData{Title: "DKIM keys", Error: msg, Data: d})
	return nil
}

func (s *Server) dkimGenerate(q *request) error {
	domain, selector, alg := q.form("domain"), q.form("selector"), q.form("algorithm")
	keep := func(d *dkimData) { d.Form.Domain, d.Form.Selector, d.Form.Algorithm = domain, selector, alg }
	if alg != dkim.AlgorithmRSA && alg != dkim.AlgorithmEd25519 {
		return s.showDKIM(q, http.StatusBadRequest, "The algorithm is rsa or ed25519. Nothing was changed.", keep)
	}
	if local, err := s.localDomain(q.ctx(), domain); err != nil {
		return err
	} else if !local {
		return s.showDKIM(q, http.StatusBadRequest, "That is not one of our domains. Nothing was changed.", keep)
	}
	if selector != "" && !validSelector(selector) {
		return s.showDKIM(q, http.StatusBadRequest, "A selector is letters, digits and '-' (e.g. rsa202612), or empty for the default. Nothing was changed.", keep)
	}
	k, err := s.opts.DKIM.Generate(q.ctx(), domain, selector, alg)
	if errors.Is(err, dkim.ErrExists) {
		return s.showDKIM(q, http.StatusBadRequest, "That domain already has a key with this selector. Nothing was changed.", keep)
	}
	if err != nil {
		return err
	}
	s.audit(q, "dkim generate", "domain", k.Domain, "selector", k.Selector, "algorithm", k.Algorithm)
	return s.showDKIM(q, http.StatusOK, "", func(d *dkimData) { d.New = k.ZoneRecord() })
}

func (s *Server) localDomain(ctx context.Context, domain string) (bool, error) {
	ds, err := s.opts.Directory.Domains(ctx)
	if err != nil {
		return false, err
	}
	for _, d := range ds {
		if strings.EqualFold(d.Name, domain) {
			return true, nil
		}
	}
	return false, nil
}

func validSelector(s string) bool {
	if len(s) > 63 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func (s *Server) dkimRemove(q *request) error {
	domain, selector := q.form("domain"), q.form("selector")
	err := s.opts.DKIM.Remove(q.ctx(), domain, selector)
	if errors.Is(err, dkim.ErrNoSuchKey) {
		return s.showDKIM(q, http.StatusNotFound, "There is no such key. Nothing was changed.", nil)
	}
	if err != nil {
		return err
	}
	s.audit(q, "dkim remove", "domain", domain, "selector", selector)
	return s.done(q, "/admin/dkim", "Removed key "+selector+" of "+domain+"; unpublish its record in a few days.")
}

type dnsData struct {
	Domain   string
	Domains  []string
	Results  []dnscheck.Result
	Warnings []string
	Resolver bool
}

func (s *Server) dnsCheck(q *request) error {
	ds, err := s.opts.Directory.Domains(q.ctx())
	if err != nil {
		return err
	}
	d := &dnsData{Warnings: s.opts.Warnings, Resolver: s.opts.Resolver != nil}
	for _, dom := range ds {
		d.Domains = append(d.Domains, dom.Name)
	}
	d.Domain = q.r.URL.Query().Get("domain")
	if d.Domain == "" && len(d.Domains) > 0 {
		d.Domain = d.Domains[0]
	}
	status := http.StatusOK
	msg := ""
	switch {
	case d.Domain == "":
	case !contains(d.Domains, d.Domain):
		status, msg, d.Domain = http.StatusNotFound, "That is not one of our domains.", ""
	case s.opts.Resolver != nil:
		var keys []dkim.Key
		if s.opts.DKIM != nil {
			if keys, err = s.opts.DKIM.List(q.ctx(), d.Domain); err != nil {
				return err
			}
		}
		ctx, cancel := context.WithTimeout(q.ctx(), dnsCheckTimeout)
		d.Results = dnscheck.Run(ctx, s.opts.Resolver, dnscheck.Params{
			Domain: d.Domain, Hostname: s.opts.Hostname, Keys: dnscheck.ZoneKeys(keys), Ports: s.opts.Ports,
		})
		cancel()
	}
	s.render(q, status, "dns", pageData{Title: "DNS check", Error: msg, Data: d})
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
