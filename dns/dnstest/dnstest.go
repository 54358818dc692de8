// Package dnstest runs an authoritative-style DNS server on 127.0.0.1 for
// tests, over UDP and TCP on the same port, answering from records the test
// adds. Point dns.Options.Server (or [dns] resolver in a config) at
// Server.Addr. It never forwards anything to the real DNS.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Server is a loopback DNS server. Records can be added at any time.
type Server struct {
	// Addr is "127.0.0.1:port", the same port for UDP and TCP.
	Addr string

	mu       sync.Mutex
	records  map[key][]dns.RR
	rcodes   map[string]int // name → forced rcode
	truncate bool
	// silent drops every query unanswered; delay holds each answer back.
	silent  bool
	delay   time.Duration
	queries map[string]int // "name TYPE" → count
	// negTTL, when set, puts a SOA in the authority section of NXDOMAIN
	// and NODATA answers, as real zones do (RFC 2308 §3).
	negTTL uint32

	udp, tcp *dns.Server
}

type key struct {
	name  string // lower-case FQDN
	qtype uint16
}

// NewServer starts a server and stops it in t.Cleanup.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start starts a server; the caller must Close it. Tests should prefer
// NewServer.
func Start() (*Server, error) {
	s := &Server{
		records: make(map[key][]dns.RR),
		rcodes:  make(map[string]int),
		queries: make(map[string]int),
	}
	// Bind UDP first on a free port, then TCP on the same port; retry a few
	// times in case the TCP port is taken.
	var pc net.PacketConn
	var ln net.Listener
	var err error
	for range 20 {
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s.Addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(s.serve)
	udpStarted := make(chan struct{})
	tcpStarted := make(chan struct{})
	s.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(udpStarted) }}
	s.tcp = &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: func() { close(tcpStarted) }}
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	<-udpStarted
	<-tcpStarted
	return s, nil
}

// Close stops the server.
func (s *Server) Close() {
	s.udp.Shutdown()
	s.tcp.Shutdown()
}

// Add adds records in zone-file syntax, e.g. "b.test. MX 10 mx.b.test." or
// "mx.b.test. A 127.0.0.1". A missing TTL means 300. It panics on a syntax
// error, which is a bug in the test.
func (s *Server) Add(records ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, text := range records {
		rr, err := dns.NewRR(text)
		if err != nil || rr == nil {
			panic(fmt.Sprintf("dnstest: bad record %q: %v", text, err))
		}
		h := rr.Header()
		if h.Ttl == 0 {
			h.Ttl = 300
		}
		k := key{strings.ToLower(dns.Fqdn(h.Name)), h.Rrtype}
		s.records[k] = append(s.records[k], rr)
	}
}

// AddTXT adds a TXT record whose value may be longer than 255 bytes: it is
// split into 255-byte strings as a zone file would.
func (s *Server) AddTXT(name, value string) {
	var parts []string
	for len(value) > 255 {
		parts = append(parts, value[:255])
		value = value[255:]
	}
	parts = append(parts, value)
	rr := &dns.TXT{
		Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300},
		Txt: parts,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{strings.ToLower(dns.Fqdn(name)), dns.TypeTXT}
	s.records[k] = append(s.records[k], rr)
}

// SetRcode makes every query for name answer with rcode (for example
// dns.RcodeServerFailure); dns.RcodeSuccess removes the override.
func (s *Server) SetRcode(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := strings.ToLower(dns.Fqdn(name))
	if rcode == dns.RcodeSuccess {
		delete(s.rcodes, n)
		return
	}
	s.rcodes[n] = rcode
}

// SetSilent makes the server answer nothing at all, as a dead resolver;
// false answers again.
func (s *Server) SetSilent(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent = on
}

// SetDelay holds every answer back by d, as a slow resolver; 0 answers at
// once.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetNegativeTTL makes NXDOMAIN and NODATA answers carry a SOA record whose
// TTL and MINIMUM are ttl seconds, so resolvers may cache them (RFC 2308);
// 0 (the default) sends no SOA.
func (s *Server) SetNegativeTTL(ttl uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.negTTL = ttl
}

// SetTruncateUDP makes every UDP answer come back empty with TC set, so that
// clients must retry over TCP.
func (s *Server) SetTruncateUDP(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncate = on
}

// Queries returns how many queries arrived for name and type ("MX", "A", …).
func (s *Server) Queries(name, qtype string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[strings.ToLower(dns.Fqdn(name))+" "+qtype]
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)

	s.mu.Lock()
	s.queries[name+" "+dns.TypeToString[q.Qtype]]++
	if s.silent {
		s.mu.Unlock()
		return
	}
	if d := s.delay; d > 0 {
		s.mu.Unlock()
		time.Sleep(d)
		s.mu.Lock()
	}
	_, isUDP := w.RemoteAddr().(*net.UDPAddr)
	if s.truncate && isUDP {
		s.mu.Unlock()
		m.Truncated = true
		w.WriteMsg(m)
		return
	}
	if rc, ok := s.rcodes[name]; ok {
		s.mu.Unlock()
		m.Rcode = rc
		w.WriteMsg(m)
		return
	}
	exists := false
	for k := range s.records {
		if k.name == name {
			exists = true
			break
		}
	}
	// Follow a CNAME as a recursive resolver would.
	target := name
	for range 8 {
		cn, ok := s.records[key{target, dns.TypeCNAME}]
		if !ok || q.Qtype == dns.TypeCNAME {
			break
		}
		m.Answer = append(m.Answer, dns.Copy(cn[0]))
		target = strings.ToLower(cn[0].(*dns.CNAME).Target)
	}
	for _, rr := range s.records[key{target, q.Qtype}] {
		m.Answer = append(m.Answer, dns.Copy(rr))
	}
	negTTL := s.negTTL
	s.mu.Unlock()
	if !exists {
		m.Rcode = dns.RcodeNameError
	}
	if negTTL > 0 && len(m.Answer) == 0 {
		m.Ns = append(m.Ns, &dns.SOA{
			Hdr: dns.RR_Header{Name: "test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: negTTL},
			Ns:  "ns.test.", Mbox: "hostmaster.test.", Serial: 1,
			Refresh: 3600, Retry: 600, Expire: 86400, Minttl: negTTL,
		})
	}
	if o := req.IsEdns0(); o != nil {
		m.SetEdns0(o.UDPSize(), false)
	}
	w.WriteMsg(m)
}
