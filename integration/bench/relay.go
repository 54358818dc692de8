package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
)

// relayDomains is how many destination domains the relay workload spreads
// its recipients over at most.
const relayDomains = 20

// relaySink is the outbound workload's far side: a DNS server on loopback
// answering MX for d1.relay.test … d20.relay.test with mx.<domain> → 127.0.0.1,
// and an SMTP receiver on loopback that counts and discards messages.
type relaySink struct {
	log      *slog.Logger
	port     int
	dnsAddr  string
	domains  []string
	received atomic.Int64

	smtpSrv *smtp.Server
	dnsUDP  *dns.Server
	dnsTCP  *dns.Server
}

func startRelaySink(log *slog.Logger) (*relaySink, error) {
	r := &relaySink{log: log}
	for i := 1; i <= relayDomains; i++ {
		r.domains = append(r.domains, fmt.Sprintf("d%d.relay.test", i))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r.port = ln.Addr().(*net.TCPAddr).Port
	r.smtpSrv = smtp.NewServer(sinkBackend{r})
	r.smtpSrv.Domain = "sink.relay.test"
	r.smtpSrv.MaxMessageBytes = 100 << 20
	r.smtpSrv.MaxRecipients = 1000
	r.smtpSrv.ReadTimeout = time.Minute
	r.smtpSrv.WriteTimeout = time.Minute
	go r.smtpSrv.Serve(ln)

	// The DNS server answers UDP and TCP on one port: a free UDP port's
	// TCP twin may be taken by another process, so try a few.
	var (
		pc net.PacketConn
		tl net.Listener
	)
	for range 20 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			r.Close()
			return nil, err
		}
		if tl, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("relay sink DNS: %w", err)
	}
	r.dnsAddr = pc.LocalAddr().String()
	h := dns.HandlerFunc(r.serveDNS)
	r.dnsUDP = &dns.Server{PacketConn: pc, Handler: h}
	r.dnsTCP = &dns.Server{Listener: tl, Handler: h}
	go r.dnsUDP.ActivateAndServe()
	go r.dnsTCP.ActivateAndServe()
	return r, nil
}

// serveDNS answers MX for the relay domains and A for their MX hosts; every
// other name is NXDOMAIN, so nothing leaves the machine. Negative answers
// carry the zone's SOA, as a real zone's do (RFC 2308 §3), with a
// one-hour negative TTL.
func (r *relaySink) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	known := false
	for _, q := range req.Question {
		name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
		host, isMXHost := strings.CutPrefix(name, "mx.")
		for _, d := range r.domains {
			switch {
			case name == d:
				known = true
				if q.Qtype == dns.TypeMX {
					m.Answer = append(m.Answer, &dns.MX{
						Hdr:        dns.RR_Header{Name: q.Name, Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 3600},
						Preference: 10, Mx: "mx." + d + ".",
					})
				}
			case isMXHost && host == d:
				known = true
				if q.Qtype == dns.TypeA {
					m.Answer = append(m.Answer, &dns.A{
						Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 3600},
						A:   net.IPv4(127, 0, 0, 1),
					})
				}
			}
		}
	}
	if !known {
		m.Rcode = dns.RcodeNameError
	}
	if len(m.Answer) == 0 {
		m.Ns = append(m.Ns, &dns.SOA{
			Hdr: dns.RR_Header{Name: "test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 3600},
			Ns:  "ns.test.", Mbox: "hostmaster.test.", Serial: 1,
			Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 3600,
		})
	}
	w.WriteMsg(m)
}

func (r *relaySink) Close() {
	if r.smtpSrv != nil {
		r.smtpSrv.Close()
	}
	if r.dnsUDP != nil {
		r.dnsUDP.Shutdown()
	}
	if r.dnsTCP != nil {
		r.dnsTCP.Shutdown()
	}
}

type sinkBackend struct{ r *relaySink }

func (b sinkBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{r: b.r}, nil }

type sinkSession struct {
	r     *relaySink
	rcpts int
}

func (s *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *sinkSession) Rcpt(string, *smtp.RcptOptions) error { s.rcpts++; return nil }
func (s *sinkSession) Reset()                               { s.rcpts = 0 }
func (s *sinkSession) Logout() error                        { return nil }
func (s *sinkSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.r.received.Add(int64(s.rcpts))
	return nil
}
