package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/queue"
	"github.com/posthouse/posthouse/sievestore"
)

func (s *Server) adminRoutes(mux *http.ServeMux) {
	a := func(h handler) http.Handler { return s.wrap(true, s.needAdmin(h)) }
	mux.Handle("GET /admin", a(s.dashboard))
	mux.Handle("GET /admin/domains", a(s.domains))
	mux.Handle("POST /admin/domains/add", a(s.addDomain))
	mux.Handle("POST /admin/domains/remove", a(s.removeDomain))
	mux.Handle("GET /admin/users", a(s.users))
	mux.Handle("POST /admin/users/add", a(s.addUser))
	mux.Handle("GET /admin/users/{address}", a(s.userPage))
	mux.Handle("POST /admin/users/{address}/{action}", a(s.userAction))
	mux.Handle("POST /admin/users/{address}/vacation/off", a(s.userVacationOff))
	mux.Handle("GET /admin/users/{address}/sieve", a(s.sieveScript))
	mux.Handle("POST /admin/users/{address}/sieve/{action}", a(s.sieveAction))
	mux.Handle("GET /admin/aliases", a(s.aliases))
	mux.Handle("POST /admin/aliases/add", a(s.addAlias))
	mux.Handle("POST /admin/aliases/remove", a(s.removeAlias))
	s.queueRoutes(mux, a)
	s.dkimRoutes(mux, a)
	mux.Handle("GET /admin/dns", a(s.dnsCheck))
}

// inputError is an error the admin caused (a bad address, an existing
// name): auth's sentinels, shown as they are.
func inputError(err error) string {
	for _, e := range []struct {
		err error
		msg string
	}{
		{auth.ErrInvalidAddress, "That is not a valid address."},
		{auth.ErrInvalidDomain, "That is not a valid domain name."},
		{auth.ErrExists, "It exists already."},
		{auth.ErrNoSuchDomain, "There is no such domain here; add it on the Domains page first."},
		{auth.ErrNoSuchUser, "There is no such user."},
		{auth.ErrNoSuchAlias, "There is no such alias."},
		{auth.ErrNoSuchGrant, "There is no such send-as grant."},
		{auth.ErrDomainNotEmpty, "The domain still has users or aliases; remove them first."},
		{auth.ErrNotLocal, "The address is not in one of our domains."},
		{auth.ErrEmptyPassword, "The password must not be empty."},
		{auth.ErrAliasLoop, "That alias would make a loop or too long a chain."},
		{auth.ErrInvalidQuota, "That quota is not valid."},
	} {
		if errors.Is(err, e.err) {
			return e.msg
		}
	}
	return ""
}

type dashboardData struct {
	Traffic     *Traffic
	QueueKnown  bool
	QueueSize   int
	QueueOldest time.Duration
	Disk        []diskUse
	Metrics     bool
}

type diskUse struct {
	Address     string
	Used, Limit int64
	Percent     int
	Err         bool
}

func (s *Server) dashboard(q *request) error {
	d := &dashboardData{Metrics: s.opts.Metrics != nil}
	now := s.opts.Now()
	if s.opts.Last24h != nil {
		t := s.opts.Last24h(now)
		d.Traffic = &t
	}
	if s.opts.Queue != nil {
		msgs, err := s.opts.Queue.List(q.ctx())
		if err != nil {
			return err
		}
		d.QueueKnown, d.QueueSize = true, len(msgs)
		if len(msgs) > 0 {
			d.QueueOldest = now.Sub(msgs[0].Created).Round(time.Second)
		}
	}
	users, err := s.opts.Directory.Users(q.ctx(), "")
	if err != nil {
		return err
	}
	for _, u := range users {
		du := diskUse{Address: u.Address, Limit: u.QuotaBytes}
		if s.opts.Usage != nil {
			used, limit, err := s.opts.Usage(q.ctx(), u.Address)
			if err != nil {
				s.log.Error("web: usage", "user", u.Address, "err", err)
				du.Err = true
			}
			du.Used, du.Limit = used, limit
		}
		if du.Limit > 0 {
			du.Percent = int(du.Used * 100 / du.Limit)
		}
		d.Disk = append(d.Disk, du)
	}
	slices.SortStableFunc(d.Disk, func(a, b diskUse) int { return int(b.Used - a.Used) })
	s.render(q, http.StatusOK, "dashboard", pageData{Title: "Dashboard", Data: d})
	return nil
}

type domainsData struct {
	Domains []auth.Domain
	Name    string
}

func (s *Server) domains(q *request) error { return s.showDomains(q, http.StatusOK, "", "") }

func (s *Server) showDomains(q *request, status int, msg, name string) error {
	ds, err := s.opts.Directory.Domains(q.ctx())
	if err != nil {
		return err
	}
	s.render(q, status, "domains", pageData{Title: "Domains", Error: msg, Data: &domainsData{Domains: ds, Name: name}})
	return nil
}

func (s *Server) addDomain(q *request) error {
	name := q.form("name")
	if err := s.opts.Directory.AddDomain(q.ctx(), name); err != nil {
		if msg := inputError(err); msg != "" {
			return s.showDomains(q, http.StatusBadRequest, msg+" Nothing was changed.", name)
		}
		return err
	}
	s.audit(q, "domain add", "domain", name)
	return s.done(q, "/admin/domains", "Added domain "+name+". Publish its DNS records: see the DNS check page.")
}

func (s *Server) removeDomain(q *request) error {
	name := q.form("name")
	if err := s.opts.Directory.RemoveDomain(q.ctx(), name, false); err != nil {
		if msg := inputError(err); msg != "" {
			return s.showDomains(q, http.StatusBadRequest, msg+" Nothing was changed.", "")
		}
		return err
	}
	s.audit(q, "domain remove", "domain", name)
	return s.done(q, "/admin/domains", "Removed domain "+name+".")
}

type usersData struct {
	Domain  string
	Domains []auth.Domain
	Users   []User
	Form    struct{ Address, Quota string }
}

func (s *Server) users(q *request) error { return s.showUsers(q, http.StatusOK, "", nil) }

func (s *Server) showUsers(q *request, status int, msg string, form func(*usersData)) error {
	d := &usersData{Domain: q.r.URL.Query().Get("domain")}
	var err error
	if d.Domains, err = s.opts.Directory.Domains(q.ctx()); err != nil {
		return err
	}
	d.Users, err = s.opts.Directory.Users(q.ctx(), d.Domain)
	if errors.Is(err, auth.ErrNoSuchDomain) || errors.Is(err, auth.ErrInvalidDomain) {
		status, msg, d.Domain = http.StatusNotFound, "There is no such domain.", ""
		d.Users, err = s.opts.Directory.Users(q.ctx(), "")
	}
	if err != nil {
		return err
	}
	if form != nil {
		form(d)
	}
	s.render(q, status, "users", pageData{Title: "Users", Error: msg, Data: d})
	return nil
}

// parseQuota reads "2GiB", "500MB", "0", "" or "unlimited".
func parseQuota(s string) (int64, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "0", "unlimited", "none":
		return 0, true
	}
	n, err := config.ParseByteSize(s)
	if err != nil || n < 0 {
		return 0, false
	}
	return int64(n), true
}

func (s *Server) addUser(q *request) error {
	address, pw, quotaText := q.form("address"), q.r.PostFormValue("password"), q.form("quota")
	admin := q.form("admin") == "on"
	keep := func(d *usersData) { d.Form.Address, d.Form.Quota = address, quotaText }
	quota, ok := parseQuota(quotaText)
	if !ok {
		return s.showUsers(q, http.StatusBadRequest, "The quota must be a size like 2GiB or 500MB, or empty for none. Nothing was changed.", keep)
	}
	if msg := checkNewPassword(pw, pw); msg != "" {
		return s.showUsers(q, http.StatusBadRequest, strings.Replace(msg, "new password", "password", 1)+" Nothing was changed.", keep)
	}
	if err := s.opts.Directory.AddUser(q.ctx(), address, pw, quota); err != nil {
		if msg := inputError(err); msg != "" {
			return s.showUsers(q, http.StatusBadRequest, msg+" Nothing was changed.", keep)
		}
		return err
	}
	canonical := address
	if a, err := auth.NormalizeAddress(address); err == nil {
		canonical = a
	}
	if admin {
		if err := s.opts.Directory.SetAdmin(q.ctx(), canonical, true); err != nil {
			return err
		}
	}
	s.audit(q, "user add", "target", canonical, "admin", admin, "quota", quota)
	return s.done(q, "/admin/users/"+url.PathEscape(canonical), "Added user "+canonical+".")
}

type userData struct {
	Target   User
	Used     int64
	Grants   []auth.SendAsGrant
	Scripts  []sievestore.Script
	Vacation *vacationData
	Self     bool
}

func (s *Server) userPage(q *request) error { return s.showUser(q, http.StatusOK, "", nil) }

// target reads the {address} of a user page; false (after an error page)
// when there is no such user.
func (s *Server) target(q *request) (User, bool, error) {
	u, err := s.opts.Accounts.User(q.ctx(), q.r.PathValue("address"))
	if errors.Is(err, auth.ErrNoSuchUser) || errors.Is(err, auth.ErrInvalidAddress) {
		s.fail(q, http.StatusNotFound, "There is no such user.")
		return User{}, false, nil
	}
	return u, err == nil, err
}

func (s *Server) showUser(q *request, status int, msg string, vac *vacationData) error {
	u, ok, err := s.target(q)
	if !ok {
		return err
	}
	d := &userData{Target: u, Self: u.Address == q.user.Address}
	if s.opts.Usage != nil {
		if d.Used, _, err = s.opts.Usage(q.ctx(), u.Address); err != nil {
			s.log.Error("web: usage", "user", u.Address, "err", err)
		}
	}
	if d.Grants, err = s.opts.Directory.SendAsGrants(q.ctx(), u.Address); err != nil {
		return err
	}
	if d.Scripts, err = s.opts.Sieve.List(q.ctx(), u.Address); err != nil {
		return err
	}
	action := "/admin/users/" + url.PathEscape(u.Address) + "/vacation"
	if vac == nil {
		v, err := s.opts.Sieve.Vacation(q.ctx(), u.Address)
		if err != nil && !errors.Is(err, sievestore.ErrNotFound) {
			return err
		}
		vac = vacationForm(v, u.Address, action)
	}
	vac.Account, vac.Action, vac.Off = u.Address, action, action+"/off"
	d.Vacation = vac
	s.render(q, status, "user", pageData{Title: u.Address, Error: msg, Data: d})
	return nil
}

// userAction handles the forms of a user's page.
func (s *Server) userAction(q *request) error {
	u, ok, err := s.target(q)
	if !ok {
		return err
	}
	back := "/admin/users/" + url.PathEscape(u.Address)
	bad := func(msg string) error { return s.showUser(q, http.StatusBadRequest, msg+" Nothing was changed.", nil) }
	self := u.Address == q.user.Address
	switch action := q.r.PathValue("action"); action {
	case "quota":
		quota, ok := parseQuota(q.form("quota"))
		if !ok {
			return bad("The quota must be a size like 2GiB or 500MB, or empty for none.")
		}
		if err := s.opts.Directory.SetQuota(q.ctx(), u.Address, quota); err != nil {
			return err
		}
		s.audit(q, "user quota", "target", u.Address, "quota", quota)
		return s.done(q, back, "Quota set.")
	case "disable", "enable":
		if self && action == "disable" {
			return bad("You cannot disable your own account.")
		}
		if err := s.opts.Directory.SetDisabled(q.ctx(), u.Address, action == "disable"); err != nil {
			return err
		}
		s.audit(q, "user "+action, "target", u.Address)
		return s.done(q, back, "User "+action+"d.")
	case "password":
		pw := q.r.PostFormValue("password")
		if msg := checkNewPassword(pw, q.r.PostFormValue("confirm")); msg != "" {
			return bad(msg)
		}
		if err := s.opts.Accounts.SetPassword(q.ctx(), u.Address, pw); err != nil {
			return err
		}
		s.sessions.removeAddress(u.Address, q.sess)
		s.audit(q, "user password reset", "target", u.Address)
		return s.done(q, back, "Password reset; the user's browser sessions were ended.")
	case "role":
		role := q.form("role")
		if role != "admin" && role != "user" {
			return bad("The role is admin or user.")
		}
		if self && role == "user" {
			return bad("You cannot take your own admin role; ask another administrator.")
		}
		if err := s.opts.Directory.SetAdmin(q.ctx(), u.Address, role == "admin"); err != nil {
			return err
		}
		s.audit(q, "user role", "target", u.Address, "role", role)
		return s.done(q, back, "Role set to "+role+".")
	case "sendas-add", "sendas-remove":
		addr := q.form("address")
		if action == "sendas-add" {
			err = s.opts.Directory.AddSendAs(q.ctx(), u.Address, addr)
		} else {
			err = s.opts.Directory.RemoveSendAs(q.ctx(), u.Address, addr)
		}
		if msg := inputError(err); msg != "" {
			return bad(msg)
		}
		if err != nil {
			return err
		}
		s.audit(q, "user "+strings.Replace(action, "-", " ", 1), "target", u.Address, "address", addr)
		return s.done(q, back, "Send-as grants changed.")
	case "vacation":
		v, d, msg := parseVacation(q, s.opts.Sieve.MaxScriptBytes())
		if msg != "" {
			return s.showUser(q, http.StatusBadRequest, msg+" Nothing was changed.", d)
		}
		if err := s.opts.Sieve.SetVacation(q.ctx(), u.Address, v); err != nil {
			return err
		}
		s.audit(q, "vacation set", "target", u.Address)
		return s.done(q, back, "Out-of-office set for "+u.Address+".")
	}
	s.fail(q, http.StatusNotFound, "No such page.")
	return nil
}

func (s *Server) userVacationOff(q *request) error {
	u, ok, err := s.target(q)
	if !ok {
		return err
	}
	if err := s.opts.Sieve.DeleteVacation(q.ctx(), u.Address); err != nil && !errors.Is(err, sievestore.ErrNotFound) {
		return err
	}
	s.audit(q, "vacation off", "target", u.Address)
	return s.done(q, "/admin/users/"+url.PathEscape(u.Address), "Out-of-office off for "+u.Address+".")
}

type sieveData struct {
	Account string
	Name    string
	Source  string
	Active  bool
	New     bool
}

// sieveScript shows one script for editing (?name=), or an empty form.
func (s *Server) sieveScript(q *request) error {
	u, ok, err := s.target(q)
	if !ok {
		return err
	}
	d := &sieveData{Account: u.Address, Name: q.r.URL.Query().Get("name")}
	if d.Name == "" {
		d.New = true
	} else {
		src, err := s.opts.Sieve.Get(q.ctx(), u.Address, d.Name)
		if errors.Is(err, sievestore.ErrNotFound) {
			s.fail(q, http.StatusNotFound, "There is no such script.")
			return nil
		}
		if err != nil {
			return err
		}
		d.Source = string(src)
		list, err := s.opts.Sieve.List(q.ctx(), u.Address)
		if err != nil {
			return err
		}
		d.Active = slices.ContainsFunc(list, func(sc sievestore.Script) bool { return sc.Name == d.Name && sc.Active })
	}
	s.render(q, http.StatusOK, "sieve", pageData{Title: "Sieve script", Data: d})
	return nil
}

func (s *Server) sieveAction(q *request) error {
	u, ok, err := s.target(q)
	if !ok {
		return err
	}
	name := q.form("name")
	back := "/admin/users/" + url.PathEscape(u.Address)
	switch q.r.PathValue("action") {
	case "save":
		src := strings.ReplaceAll(q.r.PostFormValue("script"), "\r\n", "\n")
		d := &sieveData{Account: u.Address, Name: name, Source: src, New: q.form("new") == "1"}
		bad := func(msg string) error {
			s.render(q, http.StatusBadRequest, "sieve", pageData{Title: "Sieve script", Error: msg + " Nothing was changed.", Data: d})
			return nil
		}
		if err := sievestore.ValidName(name); err != nil || name == "" {
			return bad("A script name has 1 to 128 characters, without \"/\" or control characters.")
		}
		if d.New {
			list, err := s.opts.Sieve.List(q.ctx(), u.Address)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(list, func(sc sievestore.Script) bool { return sc.Name == name }) {
				return bad("The user already has a script named " + name + "; open it to change it.")
			}
		}
		if err := s.opts.Sieve.Check([]byte(src)); err != nil {
			return bad("The script does not compile: " + err.Error())
		}
		if err := s.opts.Sieve.Put(q.ctx(), u.Address, name, []byte(src)); err != nil {
			if errors.Is(err, sievestore.ErrQuota) {
				return bad("The user has too many scripts, or this one is too large.")
			}
			return err
		}
		if q.form("activate") == "on" {
			if err := s.opts.Sieve.SetActive(q.ctx(), u.Address, name); err != nil {
				return err
			}
		}
		s.audit(q, "sieve put", "target", u.Address, "script", name, "size", len(src))
		return s.done(q, back, "Script "+name+" saved.")
	case "activate":
		if err := s.opts.Sieve.SetActive(q.ctx(), u.Address, name); err != nil {
			if errors.Is(err, sievestore.ErrNotFound) {
				return s.showUser(q, http.StatusNotFound, "There is no such script. Nothing was changed.", nil)
			}
			return err
		}
		s.audit(q, "sieve activate", "target", u.Address, "script", name)
		if name == "" {
			return s.done(q, back, "No script is active now.")
		}
		return s.done(q, back, "Script "+name+" is active.")
	case "delete":
		err := s.opts.Sieve.Delete(q.ctx(), u.Address, name)
		switch {
		case errors.Is(err, sievestore.ErrActive):
			return s.showUser(q, http.StatusBadRequest, "The script is active; deactivate it first. Nothing was changed.", nil)
		case errors.Is(err, sievestore.ErrNotFound):
			return s.showUser(q, http.StatusNotFound, "There is no such script. Nothing was changed.", nil)
		case err != nil:
			return err
		}
		s.audit(q, "sieve delete", "target", u.Address, "script", name)
		return s.done(q, back, "Script "+name+" deleted.")
	}
	s.fail(q, http.StatusNotFound, "No such page.")
	return nil
}

type aliasesData struct {
	Domain  string
	Domains []auth.Domain
	Aliases []auth.Alias
	Form    struct{ Address, Targets string }
}

func (s *Server) aliases(q *request) error { return s.showAliases(q, http.StatusOK, "", nil) }

func (s *Server) showAliases(q *request, status int, msg string, form func(*aliasesData)) error {
	d := &aliasesData{Domain: q.r.URL.Query().Get("domain")}
	var err error
	if d.Domains, err = s.opts.Directory.Domains(q.ctx()); err != nil {
		return err
	}
	d.Aliases, err = s.opts.Directory.Aliases(q.ctx(), d.Domain)
	if errors.Is(err, auth.ErrNoSuchDomain) || errors.Is(err, auth.ErrInvalidDomain) {
		status, msg, d.Domain = http.StatusNotFound, "There is no such domain.", ""
		d.Aliases, err = s.opts.Directory.Aliases(q.ctx(), "")
	}
	if err != nil {
		return err
	}
	if form != nil {
		form(d)
	}
	s.render(q, status, "aliases", pageData{Title: "Aliases", Error: msg, Data: d})
	return nil
}

// splitTargets reads targets separated by commas, spaces or lines.
func splitTargets(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

func (s *Server) addAlias(q *request) error {
	address, targetsText := q.form("address"), q.form("targets")
	keep := func(d *aliasesData) { d.Form.Address, d.Form.Targets = address, targetsText }
	targets := splitTargets(targetsText)
	if len(targets) == 0 || len(targets) > 100 {
		return s.showAliases(q, http.StatusBadRequest, "Give 1 to 100 target addresses. Nothing was changed.", keep)
	}
	if err := s.opts.Directory.AddAlias(q.ctx(), address, targets); err != nil {
		if msg := inputError(err); msg != "" {
			return s.showAliases(q, http.StatusBadRequest, msg+" Nothing was changed.", keep)
		}
		return err
	}
	s.audit(q, "alias add", "address", address, "targets", strings.Join(targets, ","))
	what := "alias " + address
	if strings.HasPrefix(address, "@") {
		what = "catch-all " + address
	}
	return s.done(q, "/admin/aliases", fmt.Sprintf("Added %s → %s.", what, strings.Join(targets, ", ")))
}

func (s *Server) removeAlias(q *request) error {
	address := q.form("address")
	if err := s.opts.Directory.RemoveAlias(q.ctx(), address); err != nil {
		if msg := inputError(err); msg != "" {
			return s.showAliases(q, http.StatusBadRequest, msg+" Nothing was changed.", nil)
		}
		return err
	}
	s.audit(q, "alias remove", "address", address)
	return s.done(q, "/admin/aliases", "Removed "+address+".")
}

// queueSummary counts a message's recipients by state.
type queueRow struct {
	queue.Message
	Pending, Delivered, Failed int
	Next                       time.Time
	LastReply                  string
}

func summarize(m queue.Message) queueRow {
	row := queueRow{Message: m}
	var last time.Time
	for _, r := range m.Recipients {
		switch r.State {
		case queue.StatePending:
			row.Pending++
			if row.Next.IsZero() || r.NextAttempt.Before(row.Next) {
				row.Next = r.NextAttempt
			}
		case queue.StateDelivered:
			row.Delivered++
		case queue.StateFailed:
			row.Failed++
		}
		if r.Reply != "" && r.LastAttempt.After(last) && r.State != queue.StateDelivered {
			last, row.LastReply = r.LastAttempt, r.Reply
		}
	}
	return row
}
