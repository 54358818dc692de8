package autoconfig

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// maxRequestBody bounds a POSTed autodiscover request: real ones are a few
// hundred bytes.
const maxRequestBody = 16 << 10

// Service is one listener clients can be told about. Port 0 means the
// service is off and is not advertised.
type Service struct {
	Port int
	// STARTTLS: the port starts in plain text and upgrades; otherwise TLS
	// starts at once (implicit TLS).
	STARTTLS bool
}

// Options describe what to advertise.
type Options struct {
	Logger *slog.Logger
	// Hostname is the name clients connect to; it must match the
	// certificate.
	Hostname string
	// Domains says whether a domain is ours; nil accepts any domain.
	Domains interface {
		IsLocalDomain(ctx context.Context, domain string) (bool, error)
	}
	IMAPS, IMAP, POP3S, POP3, Submissions, Submission Service
	// HTTPS is the port of the https listener, 0 when it is off. Outlook
	// fetches its settings only over HTTPS: autodiscover v2 and the plain
	// HTTP redirect point at https://Hostname[:HTTPS]/autodiscover/autodiscover.xml.
	HTTPS int
}

// Handler serves the autoconfig and autodiscover endpoints.
type Handler struct {
	opts Options
	mux  *http.ServeMux
}

// New returns the handler.
func New(opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: opts, mux: http.NewServeMux()}
	h.mux.HandleFunc("/mail/config-v1.1.xml", h.handleAutoconfig)
	h.mux.HandleFunc("/.well-known/autoconfig/mail/config-v1.1.xml", h.handleAutoconfig)
	return h
}

// ServeHTTP routes requests; autodiscover paths are matched without regard
// to case because Outlook sends /Autodiscover/Autodiscover.xml.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.ToLower(r.URL.Path)
	switch {
	case path == "/autodiscover/autodiscover.xml":
		h.handleAutodiscover(w, r)
	case path == jsonPath || strings.HasPrefix(path, jsonPath+"/"):
		h.handleAutodiscoverJSON(w, r)
	default:
		h.mux.ServeHTTP(w, r)
	}
}

// jsonPath is autodiscover v2's endpoint, lower-cased. New Outlook and
// Outlook for iOS/Android put the address in the path
// (…/autodiscover.json/v1.0/alice@example.com?Protocol=AutodiscoverV1);
// older callers use the query (?Email=…&Protocol=…).
const jsonPath = "/autodiscover/autodiscover.json"

// poxURL is where Outlook POSTs its POX request: our hostname over HTTPS.
func (h *Handler) poxURL() string {
	host := h.opts.Hostname
	if p := h.opts.HTTPS; p != 0 && p != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(p))
	}
	u := url.URL{Scheme: "https", Host: host, Path: "/autodiscover/autodiscover.xml"}
	return u.String()
}

var (
	errNotOurs        = errors.New("address is not in a local domain")
	errInvalidAddress = errors.New("invalid address")
)

// checkAddress validates an address a client sent and tells whether its
// domain is ours. It returns the address and its domain, lower-cased.
func (h *Handler) checkAddress(ctx context.Context, addr string) (string, string, error) {
	addr = strings.ToLower(strings.TrimSpace(addr))
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 || len(addr) > 254 || strings.ContainsAny(addr, " \t\r\n<>\"") {
		return "", "", errInvalidAddress
	}
	domain := addr[at+1:]
	if h.opts.Domains != nil {
		ok, err := h.opts.Domains.IsLocalDomain(ctx, domain)
		if err != nil {
			return "", "", err
		}
		if !ok {
			return "", "", errNotOurs
		}
	}
	return addr, domain, nil
}

// Thunderbird ISPDB format, https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat
type clientConfig struct {
	XMLName  xml.Name      `xml:"clientConfig"`
	Version  string        `xml:"version,attr"`
	Provider emailProvider `xml:"emailProvider"`
}

type emailProvider struct {
	ID               string         `xml:"id,attr"`
	Domain           string         `xml:"domain"`
	DisplayName      string         `xml:"displayName"`
	DisplayShortName string         `xml:"displayShortName"`
	Incoming         []serverConfig `xml:"incomingServer"`
	Outgoing         []serverConfig `xml:"outgoingServer"`
}

type serverConfig struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Authentication string `xml:"authentication"`
	Username       string `xml:"username"`
}

func (h *Handler) handleAutoconfig(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// Thunderbird sends emailaddress; the domain alone may also be known
	// from the Host header (autoconfig.<domain>).
	domain := ""
	if a := r.URL.Query().Get("emailaddress"); a != "" {
		_, d, err := h.checkAddress(r.Context(), a)
		if err != nil {
			h.refuse(w, r, err)
			return
		}
		domain = d
	} else {
		host := strings.ToLower(r.Host)
		if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
			host = host[:i]
		}
		domain = strings.TrimPrefix(host, "autoconfig.")
		_, d, err := h.checkAddress(r.Context(), "postmaster@"+domain)
		if err != nil {
			h.refuse(w, r, err)
			return
		}
		domain = d
	}
	o := h.opts
	cfg := clientConfig{Version: "1.1", Provider: emailProvider{
		ID: domain, Domain: domain, DisplayName: domain + " mail", DisplayShortName: domain,
	}}
	add := func(list *[]serverConfig, typ string, s Service) {
		if s.Port == 0 {
			return
		}
		st := "SSL"
		if s.STARTTLS {
			st = "STARTTLS"
		}
		*list = append(*list, serverConfig{typ, o.Hostname, s.Port, st, "password-cleartext", "%EMAILADDRESS%"})
	}
	// Order is preference: Thunderbird picks the first that works.
	add(&cfg.Provider.Incoming, "imap", o.IMAPS)
	add(&cfg.Provider.Incoming, "imap", o.IMAP)
	add(&cfg.Provider.Incoming, "pop3", o.POP3S)
	add(&cfg.Provider.Incoming, "pop3", o.POP3)
	add(&cfg.Provider.Outgoing, "smtp", o.Submissions)
	add(&cfg.Provider.Outgoing, "smtp", o.Submission)
	h.writeXML(w, r, cfg)
	o.Logger.Info("autoconfig served", "client", "thunderbird", "domain", domain, "remote", r.RemoteAddr)
}

// Outlook POX request, https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/pox-autodiscover-request-for-exchange
type autodiscoverRequest struct {
	XMLName xml.Name `xml:"Autodiscover"`
	Request struct {
		EMailAddress             string `xml:"EMailAddress"`
		AcceptableResponseSchema string `xml:"AcceptableResponseSchema"`
	} `xml:"Request"`
}

const (
	nsAutodiscover = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	nsOutlook      = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
	nsMobileSync   = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
)

type autodiscoverResponse struct {
	XMLName  xml.Name `xml:"Autodiscover"`
	XMLNS    string   `xml:"xmlns,attr"`
	Response any      `xml:"Response"`
}

type outlookResponse struct {
	XMLNS string `xml:"xmlns,attr"`
	User  struct {
		DisplayName  string `xml:"DisplayName,omitempty"`
		EMailAddress string `xml:"EMailAddress"`
	} `xml:"User"`
	Account struct {
		AccountType string            `xml:"AccountType"`
		Action      string            `xml:"Action"`
		Protocol    []outlookProtocol `xml:"Protocol"`
	} `xml:"Account"`
}

type outlookProtocol struct {
	Type           string `xml:"Type"`
	Server         string `xml:"Server"`
	Port           int    `xml:"Port"`
	DomainRequired string `xml:"DomainRequired"`
	LoginName      string `xml:"LoginName"`
	SPA            string `xml:"SPA"`
	SSL            string `xml:"SSL"`
	Encryption     string `xml:"Encryption,omitempty"`
	AuthRequired   string `xml:"AuthRequired"`
	UsePOPAuth     string `xml:"UsePOPAuth,omitempty"`
	SMTPLast       string `xml:"SMTPLast,omitempty"`
}

type mobileSyncError struct {
	XMLNS   string `xml:"xmlns,attr"`
	Culture string `xml:"Culture"`
	User    struct {
		EMailAddress string `xml:"EMailAddress"`
	} `xml:"User"`
	Action struct {
		Error struct {
			Status    int    `xml:"Status"`
			Message   string `xml:"Message"`
			DebugData string `xml:"DebugData"`
			ErrorCode int    `xml:"ErrorCode"`
		} `xml:"Error"`
	} `xml:"Action"`
}

func (h *Handler) handleAutodiscover(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		if r.TLS == nil && h.opts.HTTPS != 0 && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			// Outlook's "HTTP redirect method": when no HTTPS answer
			// works for autodiscover.<domain> (its certificate rarely
			// names it), Outlook GETs the plain-HTTP URL and follows a
			// redirect to an HTTPS endpoint whose certificate is valid,
			// after asking the user once.
			http.Redirect(w, r, h.poxURL(), http.StatusFound)
			h.opts.Logger.Info("autodiscover redirected", "client", "outlook", "remote", r.RemoteAddr)
			return
		}
		// Some Outlook builds probe with GET first; a 405 sends them on to
		// POST.
		w.Header().Set("Allow", "POST")
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	req, err := parseAutodiscoverRequest(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		h.opts.Logger.Warn("autodiscover request refused", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	addr, _, err := h.checkAddress(r.Context(), req.Request.EMailAddress)
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	schema := strings.TrimSpace(req.Request.AcceptableResponseSchema)
	if strings.EqualFold(schema, nsMobileSync) {
		var resp mobileSyncError
		resp.XMLNS = nsMobileSync
		resp.Culture = "en:us"
		resp.User.EMailAddress = addr
		resp.Action.Error.Status = 1
		resp.Action.Error.Message = "ActiveSync is not offered; configure IMAP and SMTP"
		resp.Action.Error.ErrorCode = 600
		h.writeXML(w, r, autodiscoverResponse{XMLNS: nsAutodiscover, Response: resp})
		h.opts.Logger.Info("autodiscover served", "client", "mobilesync", "remote", r.RemoteAddr)
		return
	}
	if schema != "" && !strings.EqualFold(schema, nsOutlook) {
		http.Error(w, "unsupported response schema", http.StatusBadRequest)
		return
	}
	o := h.opts
	var resp outlookResponse
	resp.XMLNS = nsOutlook
	resp.User.EMailAddress = addr
	resp.Account.AccountType = "email"
	resp.Account.Action = "settings"
	add := func(typ string, s Service) {
		if s.Port == 0 {
			return
		}
		p := outlookProtocol{Type: typ, Server: o.Hostname, Port: s.Port, DomainRequired: "off",
			LoginName: addr, SPA: "off", SSL: "on", AuthRequired: "on"}
		if s.STARTTLS {
			p.Encryption = "TLS"
		}
		if typ == "SMTP" {
			p.UsePOPAuth, p.SMTPLast = "off", "off"
		}
		resp.Account.Protocol = append(resp.Account.Protocol, p)
	}
	// Outlook uses the first usable entry of each type.
	add("IMAP", pick(o.IMAPS, o.IMAP))
	add("POP3", pick(o.POP3S, o.POP3))
	add("SMTP", pick(o.Submissions, o.Submission))
	h.writeXML(w, r, autodiscoverResponse{XMLNS: nsAutodiscover, Response: resp})
	o.Logger.Info("autodiscover served", "client", "outlook", "remote", r.RemoteAddr)
}

// pick prefers implicit TLS, which every Outlook handles the same way.
func pick(implicit, starttls Service) Service {
	if implicit.Port != 0 {
		return implicit
	}
	return starttls
}

// parseAutodiscoverRequest decodes a POX request. encoding/xml expands no
// external or custom entities (an undefined entity is an error), so billion
// laughs and XXE bodies fail; the caller bounds the size.
func parseAutodiscoverRequest(r io.Reader) (*autodiscoverRequest, error) {
	dec := xml.NewDecoder(r)
	dec.Strict = true
	dec.Entity = nil
	var req autodiscoverRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if req.Request.EMailAddress == "" {
		return nil, errors.New("no EMailAddress")
	}
	return &req, nil
}

func (h *Handler) handleAutodiscoverJSON(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// Query keys and the protocol are matched without regard to case:
	// Outlook builds differ ("Protocol=AutodiscoverV1",
	// "protocol=autodiscoverv1").
	var email, protocol string
	for k, v := range r.URL.Query() {
		switch strings.ToLower(k) {
		case "email":
			email = v[0]
		case "protocol":
			protocol = v[0]
		}
	}
	rest := strings.TrimPrefix(r.URL.Path[len(jsonPath):], "/")
	if rest != "" {
		// v1.0/{address}: the version is not checked (only 1.0 exists).
		_, addr, ok := strings.Cut(rest, "/")
		if !ok || addr == "" || strings.Contains(addr, "/") {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		email = addr
	}
	if _, _, err := h.checkAddress(r.Context(), email); err != nil {
		h.refuse(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !strings.EqualFold(protocol, "AutodiscoverV1") {
		// What Microsoft's own service answers for a protocol it does not
		// offer; for ActiveSync it makes Outlook fall back to IMAP/SMTP
		// settings (AutodiscoverV1, then the POX answer).
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"ErrorCode": "ProtocolNotSupported",
			"ErrorMessage": "The given protocol value is not supported. Supported values are 'AutodiscoverV1'"})
		h.opts.Logger.Info("autodiscover v2 refused", "protocol", protocol, "remote", r.RemoteAddr)
		return
	}
	json.NewEncoder(w).Encode(map[string]string{"Protocol": "AutodiscoverV1", "Url": h.poxURL()})
	h.opts.Logger.Info("autodiscover v2 served", "remote", r.RemoteAddr)
}

func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errNotOurs):
		http.Error(w, "not a domain of this server", http.StatusNotFound)
	case errors.Is(err, errInvalidAddress):
		http.Error(w, "invalid address", http.StatusBadRequest)
	default:
		h.opts.Logger.Error("autoconfig lookup failed", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "temporary failure", http.StatusServiceUnavailable)
	}
}

func (h *Handler) writeXML(w http.ResponseWriter, r *http.Request, v any) {
	out, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		h.opts.Logger.Error("autoconfig encode", "err", err)
		http.Error(w, "temporary failure", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		return
	}
	io.WriteString(w, xml.Header)
	w.Write(out)
	io.WriteString(w, "\n")
}
