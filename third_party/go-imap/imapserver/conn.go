package imapserver

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

const (
	cmdReadTimeout     = 30 * time.Second
	idleReadTimeout    = 35 * time.Minute // section 5.4 says 30min minimum
	literalReadTimeout = 5 * time.Minute

	respWriteTimeout    = 30 * time.Second
	literalWriteTimeout = 5 * time.Minute

	maxCommandSize = 50 * 1024 // RFC 2683 section 3.2.1.5 says 8KiB minimum
)

var internalServerErrorResp = &imap.StatusResponse{
	Type: imap.StatusResponseTypeNo,
	Code: imap.ResponseCodeServerBug,
	Text: "Internal server error",
}

// A Conn represents an IMAP connection to the server.
type Conn struct {
	server   *Server
	br       *bufio.Reader
	bw       *bufio.Writer
	encMutex sync.Mutex

	mutex   sync.Mutex
	conn    net.Conn
	enabled imap.CapSet

	state   imap.ConnState
	session Session

	// Posthouse patch: readOnly is set by EXAMINE so CLOSE does not
	// expunge; badCommands counts consecutive unparseable command lines.
	readOnly    bool
	badCommands int
	// closeAfter: a non-synchronizing literal was refused; its bytes are on
	// their way and must not be read as commands, so the connection ends
	// after the reply.
	closeAfter bool
	// compressed: COMPRESS DEFLATE is active (compress.go).
	compressed bool
	// writeDeadline is the write deadline last set on conn (zero: none),
	// under encMutex (setWriteTimeout).
	writeDeadline time.Time
	// w is what bw writes to; small is bw's own writer while a long FETCH
	// has borrowed a larger one (borrowBigWriter). Under encMutex.
	// (Posthouse patch.)
	w     io.Writer
	small *bufio.Writer
	// corked: a command is running, so its untagged responses stay in bw
	// until its tagged reply, a continuation request, a BYE or a full
	// buffer flushes them (Posthouse patch).
	corked atomic.Bool
}

// errAutologout: the client stayed silent past its timeout and got a BYE
// (Posthouse patch).
var errAutologout = errors.New("imapserver: autologout")

// maxBadCommands is how many unparseable command lines in a row we answer
// with BAD before giving up on the client (Posthouse patch).
const maxBadCommands = 20

func newConn(c net.Conn, server *Server) *Conn {
	rw := server.options.wrapReadWriter(c)
	br := bufio.NewReader(rw)
	bw := bufio.NewWriter(rw)
	return &Conn{
		conn:    c,
		server:  server,
		br:      br,
		bw:      bw,
		w:       rw,
		enabled: make(imap.CapSet),
	}
}

// NetConn returns the underlying connection that is wrapped by the IMAP
// connection.
//
// Writing to or reading from this connection directly will corrupt the IMAP
// session.
func (c *Conn) NetConn() net.Conn {
	c.mutex.Lock()
	defer c.mutex.Unlock()
	return c.conn
}

// Bye terminates the IMAP connection.
func (c *Conn) Bye(text string) error {
	respErr := c.writeStatusResp("", &imap.StatusResponse{
		Type: imap.StatusResponseTypeBye,
		Text: text,
	})
	closeErr := c.conn.Close()
	if respErr != nil {
		return respErr
	}
	return closeErr
}

func (c *Conn) EnabledCaps() imap.CapSet {
	c.mutex.Lock()
	defer c.mutex.Unlock()

	return c.enabled.Copy()
}

func (c *Conn) serve() {
	defer func() {
		if v := recover(); v != nil {
			c.server.logger().Printf("panic handling command: %v\n%s", v, debug.Stack())
		}

		c.conn.Close()
	}()

	c.server.mutex.Lock()
	c.server.conns[c] = struct{}{}
	c.server.mutex.Unlock()
	defer func() {
		c.server.mutex.Lock()
		delete(c.server.conns, c)
		c.server.mutex.Unlock()
	}()

	var (
		greetingData *GreetingData
		err          error
	)
	c.session, greetingData, err = c.server.options.NewSession(c)
	if err != nil {
		var (
			resp    *imap.StatusResponse
			imapErr *imap.Error
		)
		if errors.As(err, &imapErr) && imapErr.Type == imap.StatusResponseTypeBye {
			resp = (*imap.StatusResponse)(imapErr)
		} else {
			c.server.logger().Printf("failed to create session: %v", err)
			resp = internalServerErrorResp
		}
		if err := c.writeStatusResp("", resp); err != nil {
			c.server.logger().Printf("failed to write greeting: %v", err)
		}
		return
	}

	defer func() {
		if c.session != nil {
			if err := c.session.Close(); err != nil {
				c.server.logger().Printf("failed to close session: %v", err)
			}
		}
	}()

	caps := c.server.options.caps()
	if _, ok := c.session.(SessionIMAP4rev2); !ok && caps.Has(imap.CapIMAP4rev2) {
		panic("imapserver: server advertises IMAP4rev2 but session doesn't support it")
	}
	if _, ok := c.session.(SessionNamespace); !ok && caps.Has(imap.CapNamespace) {
		panic("imapserver: server advertises NAMESPACE but session doesn't support it")
	}
	if _, ok := c.session.(SessionMove); !ok && caps.Has(imap.CapMove) {
		panic("imapserver: server advertises MOVE but session doesn't support it")
	}
	if _, ok := c.session.(SessionQuota); !ok && caps.Has(imap.CapQuota) { // Posthouse patch
		panic("imapserver: server advertises QUOTA but session doesn't support it")
	}
	if _, ok := c.session.(SessionUnauthenticate); !ok && caps.Has(imap.CapUnauthenticate) {
		panic("imapserver: server advertises UNAUTHENTICATE but session doesn't support it")
	}
	if _, ok := c.session.(SessionAppendMessages); !ok && (caps.Has(imap.CapMultiAppend) || caps.Has(imap.CapCatenate)) { // Posthouse patch
		panic("imapserver: server advertises MULTIAPPEND or CATENATE but session doesn't support SessionAppendMessages")
	}

	c.state = imap.ConnStateNotAuthenticated
	statusType := imap.StatusResponseTypeOK
	if greetingData != nil && greetingData.PreAuth {
		c.state = imap.ConnStateAuthenticated
		statusType = imap.StatusResponseTypePreAuth
	}
	if err := c.writeCapabilityStatus("", statusType, "IMAP server ready"); err != nil {
		c.server.logger().Printf("failed to write greeting: %v", err)
		return
	}

	for {
		var readTimeout time.Duration
		switch c.state {
		case imap.ConnStateAuthenticated, imap.ConnStateSelected:
			readTimeout = c.server.options.idleTimeout()
		default:
			readTimeout = c.server.options.loginTimeout()
		}
		c.setReadTimeout(readTimeout)

		dec := imapwire.NewDecoder(c.br, imapwire.ConnSideServer)
		dec.MaxSize = maxCommandSize
		dec.CheckBufferedLiteralFunc = func(size int64, nonSync bool) error {
			return c.checkBufferedLiteral(dec, size, nonSync)
		}

		if c.state == imap.ConnStateLogout || dec.EOF() {
			break
		}
		// Posthouse patch: a client silent for too long gets a BYE
		// (RFC 9051 §5.4 autologout) instead of a bare close.
		var netErr net.Error
		if errors.As(dec.Err(), &netErr) && netErr.Timeout() {
			c.state = imap.ConnStateLogout
			c.Bye("Autologout; idle for too long")
			break
		}

		c.setReadTimeout(cmdReadTimeout)
		if err := c.readCommand(dec); err != nil {
			if !errors.Is(err, net.ErrClosed) && !connGone(err) {
				c.server.logger().Printf("failed to read command: %v", err)
			}
			break
		}
	}
}

func (c *Conn) readCommand(dec *imapwire.Decoder) error {
	var tag, name string
	if !dec.ExpectAtom(&tag) || !dec.ExpectSP() || !dec.ExpectAtom(&name) {
		return c.badCommandLine(dec, tag)
	}
	name = strings.ToUpper(name)

	numKind := NumKindSeq
	if name == "UID" {
		numKind = NumKindUID
		var subName string
		if !dec.ExpectSP() || !dec.ExpectAtom(&subName) {
			return c.badCommandLine(dec, tag)
		}
		name = "UID " + strings.ToUpper(subName)
	}
	c.badCommands = 0
	// Posthouse patch: the command's responses go out together with its
	// tagged reply, in one write where they fit the buffer.
	c.corked.Store(true)
	defer c.uncork()
	if done := c.server.options.CommandDone; done != nil { // Posthouse patch
		start := time.Now()
		defer func() { done(name, time.Since(start)) }()
	}

	// TODO: handle multiple commands concurrently
	sendOK := true
	var err error
	switch name {
	case "NOOP", "CHECK":
		err = c.handleNoop(dec)
	case "LOGOUT":
		err = c.handleLogout(dec)
	case "CAPABILITY":
		err = c.handleCapability(dec)
	case "ID": // Posthouse patch: RFC 2971, allowed in every state
		err = c.handleID(dec)
	case "STARTTLS":
		err = c.handleStartTLS(tag, dec)
		sendOK = false
	case "AUTHENTICATE":
		err = c.handleAuthenticate(tag, dec)
		sendOK = false
	case "UNAUTHENTICATE":
		err = c.handleUnauthenticate(dec)
	case "LOGIN":
		err = c.handleLogin(tag, dec)
		sendOK = false
	case "ENABLE":
		err = c.handleEnable(dec)
	case "CREATE":
		err = c.handleCreate(tag, dec)
		sendOK = false // Posthouse patch: OK [MAILBOXID]
	case "DELETE":
		err = c.handleDelete(dec)
	case "RENAME":
		err = c.handleRename(dec)
	case "SUBSCRIBE":
		err = c.handleSubscribe(dec)
	case "UNSUBSCRIBE":
		err = c.handleUnsubscribe(dec)
	case "STATUS":
		err = c.handleStatus(dec)
	case "LIST":
		err = c.handleList(dec)
	case "LSUB":
		err = c.handleLSub(dec)
	case "NAMESPACE":
		err = c.handleNamespace(dec)
	case "IDLE":
		err = c.handleIdle(dec)
	case "SELECT", "EXAMINE":
		err = c.handleSelect(tag, dec, name == "EXAMINE")
		sendOK = false
	case "CLOSE", "UNSELECT":
		err = c.handleUnselect(dec, name == "CLOSE")
	case "APPEND":
		err = c.handleAppend(tag, dec)
		sendOK = false
	case "FETCH", "UID FETCH":
		err = c.handleFetch(dec, numKind)
	case "EXPUNGE":
		err = c.handleExpunge(dec)
	case "UID EXPUNGE":
		err = c.handleUIDExpunge(dec)
	case "STORE", "UID STORE":
		err = c.handleStore(dec, numKind)
	case "COPY", "UID COPY":
		err = c.handleCopy(tag, dec, numKind)
		sendOK = false
	case "MOVE", "UID MOVE":
		err = c.handleMove(dec, numKind)
	case "SEARCH", "UID SEARCH":
		err = c.handleSearch(tag, dec, numKind)
	case "SORT", "UID SORT": // Posthouse patch: RFC 5256, RFC 5267
		err = c.handleSort(tag, dec, numKind)
	case "THREAD", "UID THREAD": // Posthouse patch: RFC 5256 §4
		err = c.handleThread(dec, numKind)
	case "CANCELUPDATE": // Posthouse patch: RFC 5267
		err = c.handleCancelUpdate(dec)
	case "COMPRESS", "GETQUOTA", "GETQUOTAROOT", "SETQUOTA", "NOTIFY": // Posthouse patch: unknown unless enabled
		var handled bool
		if handled, err = c.handleExtension(tag, name, dec); handled {
			sendOK = name != "COMPRESS" || err != nil
			break
		}
		fallthrough
	default:
		if c.state == imap.ConnStateNotAuthenticated {
			// Don't allow a single unknown command before authentication to
			// mitigate cross-protocol attacks:
			// https://www-archive.mozilla.org/projects/netlib/portbanning
			c.state = imap.ConnStateLogout
			defer c.Bye("Unknown command")
		}
		err = &imap.Error{
			Type: imap.StatusResponseTypeBad,
			Text: "Unknown command",
		}
	}

	if errors.Is(err, errAutologout) {
		return nil // BYE already sent, connection closed
	}
	if c.closeAfter {
		c.state = imap.ConnStateLogout
		defer c.Bye("Literal too large")
	} else {
		dec.DiscardLine()
	}

	var (
		resp    *imap.StatusResponse
		imapErr *imap.Error
		decErr  *imapwire.DecoderExpectError
	)
	if errors.As(err, &imapErr) {
		resp = (*imap.StatusResponse)(imapErr)
		// Posthouse patch: an OK with a code (STORE's MODIFIED) is a
		// success: pending updates go out first.
		if imapErr.Type == imap.StatusResponseTypeOK {
			if err := c.poll(name); err != nil {
				return err
			}
		}
	} else if errors.As(err, &decErr) {
		resp = &imap.StatusResponse{
			Type: imap.StatusResponseTypeBad,
			Code: imap.ResponseCodeClientBug,
			Text: "Syntax error: " + decErr.Message,
		}
	} else if connGone(err) {
		// Posthouse patch: the client went away (or stalled past a
		// deadline) mid-command: nobody to answer, and not our failure.
		return err
	} else if err != nil {
		c.server.logger().Printf("handling %v command: %v", name, err)
		resp = internalServerErrorResp
	} else {
		if !sendOK {
			return nil
		}
		if err := c.poll(name); err != nil {
			return err
		}
		resp = &imap.StatusResponse{
			Type: imap.StatusResponseTypeOK,
			Text: fmt.Sprintf("%v completed", name),
		}
	}
	return c.writeStatusResp(tag, resp)
}

// handleExtension runs an extension command the server has enabled
// (Posthouse patch); handled is false for one it has not.
func (c *Conn) handleExtension(tag, name string, dec *imapwire.Decoder) (handled bool, err error) {
	switch name {
	case "COMPRESS": // RFC 4978
		if c.server.options.caps().Has(CapCompressDeflate) {
			return true, c.handleCompress(tag, dec)
		}
	case "GETQUOTA", "GETQUOTAROOT", "SETQUOTA": // RFC 9208
		if _, ok := c.session.(SessionQuota); ok {
			return true, c.handleQuota(name, dec)
		}
	case "NOTIFY": // RFC 5465
		if _, ok := c.session.(SessionNotify); ok {
			return true, c.handleNotify(dec)
		}
	}
	return false, nil
}

// badCommandLine answers a command line whose tag or command name cannot be
// parsed (including an empty line) with BAD and keeps the connection, as RFC
// 9051 §7.1.3 intends; upstream closed the connection. I/O errors and
// over-long lines still end it, as does a run of maxBadCommands bad lines.
// (Posthouse patch.)
func (c *Conn) badCommandLine(dec *imapwire.Decoder, tag string) error {
	var decErr *imapwire.DecoderExpectError
	if !errors.As(dec.Err(), &decErr) {
		return fmt.Errorf("in command: %w", dec.Err())
	}
	dec.DiscardLine()
	if err := dec.Err(); err != nil && !errors.As(err, &decErr) {
		return fmt.Errorf("in command: %w", err)
	}
	c.badCommands++
	if c.badCommands > maxBadCommands {
		c.state = imap.ConnStateLogout
		return c.Bye("Too many invalid commands")
	}
	if tag == "" || !isValidTag(tag) {
		tag = "*"
	}
	return c.writeStatusResp(tag, &imap.StatusResponse{
		Type: imap.StatusResponseTypeBad,
		Code: imap.ResponseCodeClientBug,
		Text: "Syntax error: expected a tag and a command",
	})
}

// connGone reports whether err means the connection is unusable: the peer
// closed or reset it or stalled past a deadline, or the server closed it.
// Such errors are not logged as failures (Posthouse patch).
func connGone(err error) bool {
	var netErr net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		(errors.As(err, &netErr) && netErr.Timeout())
}

func isValidTag(tag string) bool {
	for i := 0; i < len(tag); i++ {
		if tag[i] == '+' {
			return false
		}
	}
	return true
}

func (c *Conn) handleNoop(dec *imapwire.Decoder) error {
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	return nil
}

func (c *Conn) handleLogout(dec *imapwire.Decoder) error {
	if !dec.ExpectCRLF() {
		return dec.Err()
	}

	c.state = imap.ConnStateLogout

	return c.writeStatusResp("", &imap.StatusResponse{
		Type: imap.StatusResponseTypeBye,
		Text: "Logging out",
	})
}

func (c *Conn) handleDelete(dec *imapwire.Decoder) error {
	var name string
	if !dec.ExpectSP() || !dec.ExpectMailbox(&name) || !dec.ExpectCRLF() {
		return dec.Err()
	}
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return err
	}
	return c.session.Delete(name)
}

func (c *Conn) handleRename(dec *imapwire.Decoder) error {
	var oldName, newName string
	if !dec.ExpectSP() || !dec.ExpectMailbox(&oldName) || !dec.ExpectSP() || !dec.ExpectMailbox(&newName) || !dec.ExpectCRLF() {
		return dec.Err()
	}
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return err
	}
	var options imap.RenameOptions
	return c.session.Rename(oldName, newName, &options)
}

func (c *Conn) handleSubscribe(dec *imapwire.Decoder) error {
	var name string
	if !dec.ExpectSP() || !dec.ExpectMailbox(&name) || !dec.ExpectCRLF() {
		return dec.Err()
	}
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return err
	}
	return c.session.Subscribe(name)
}

func (c *Conn) handleUnsubscribe(dec *imapwire.Decoder) error {
	var name string
	if !dec.ExpectSP() || !dec.ExpectMailbox(&name) || !dec.ExpectCRLF() {
		return dec.Err()
	}
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return err
	}
	return c.session.Unsubscribe(name)
}

func (c *Conn) checkBufferedLiteral(dec *imapwire.Decoder, size int64, nonSync bool) error {
	if size > 4096 {
		c.refuseLiteral(dec, nonSync)
		return &imap.Error{
			Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCodeTooBig,
			Text: "Literals are limited to 4096 bytes for this command",
		}
	}

	return c.acceptLiteral(size, nonSync)
}

// refuseLiteral prepares the connection for a refused literal: for a
// synchronizing one the client sends nothing more, for a non-synchronizing
// one it is already sending bytes we will not read (Posthouse patch).
func (c *Conn) refuseLiteral(dec *imapwire.Decoder, nonSync bool) {
	if nonSync {
		c.closeAfter = true
	} else {
		dec.LineDone()
	}
}

func (c *Conn) acceptLiteral(size int64, nonSync bool) error {
	if nonSync && size > 4096 && !c.server.options.caps().Has(imap.CapLiteralPlus) {
		return &imap.Error{
			Type: imap.StatusResponseTypeBad,
			Text: "Non-synchronizing literals are limited to 4096 bytes",
		}
	}

	if nonSync {
		return nil
	}

	if err := c.writeContReq("Ready for literal data"); err != nil {
		return err
	}
	// Posthouse patch: after the continuation, so that writing it does
	// not put the connection back into delayed-ACK mode.
	quickAck(c.conn)
	return nil
}

func (c *Conn) canAuth() bool {
	if c.state != imap.ConnStateNotAuthenticated {
		return false
	}
	_, isTLS := c.conn.(*tls.Conn)
	return isTLS || c.server.options.InsecureAuth
}

func (c *Conn) writeStatusResp(tag string, statusResp *imap.StatusResponse) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	return writeStatusResp(enc.Encoder, tag, statusResp)
}

func (c *Conn) writeContReq(text string) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	return writeContReq(enc.Encoder, text)
}

func (c *Conn) writeCapabilityStatus(tag string, typ imap.StatusResponseType, text string) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	return writeCapabilityStatus(enc.Encoder, tag, typ, c.availableCaps(), text)
}

func (c *Conn) checkState(state imap.ConnState) error {
	if state == imap.ConnStateAuthenticated && c.state == imap.ConnStateSelected {
		return nil
	}
	if c.state != state {
		return newClientBugError(fmt.Sprintf("This command is only valid in the %s state", state))
	}
	return nil
}

func (c *Conn) setReadTimeout(dur time.Duration) {
	if dur > 0 {
		c.conn.SetReadDeadline(time.Now().Add(dur))
	} else {
		c.conn.SetReadDeadline(time.Time{})
	}
}

// setWriteTimeout is called with encMutex held: every response sets a
// deadline before it writes.
//
// Posthouse patch: setting a deadline takes the connection's locks and
// moves its timer, twice per response (set, then cleared), which was a
// quarter of the server's time in a FETCH of flags over many messages. A
// deadline already within a second of the one asked for is kept, and the
// deadline is no longer cleared after a response: the next response sets
// its own before writing, and nothing writes without one.
func (c *Conn) setWriteTimeout(dur time.Duration) {
	if dur <= 0 {
		return
	}
	// Posthouse patch: the deadline now+dur is within a second of the one
	// set when the time it was set for, writeDeadline-dur, is within a
	// second of now. time.Since reads only the monotonic clock, where
	// time.Now reads two clocks: that was half of what starting a FETCH
	// response cost.
	if !c.writeDeadline.IsZero() {
		if e := time.Since(c.writeDeadline.Add(-dur)); e > -time.Second && e < time.Second {
			return
		}
	}
	d := time.Now().Add(dur)
	c.writeDeadline = d
	c.conn.SetWriteDeadline(d)
}

func (c *Conn) poll(cmd string) error {
	switch c.state {
	case imap.ConnStateAuthenticated, imap.ConnStateSelected:
		// nothing to do
	default:
		return nil
	}

	allowExpunge := true
	switch cmd {
	case "FETCH", "STORE", "SEARCH":
		allowExpunge = false
	}

	w := &UpdateWriter{conn: c, allowExpunge: allowExpunge}
	return c.session.Poll(w, allowExpunge)
}

type responseEncoder struct {
	*imapwire.Encoder
	conn *Conn
}

func newResponseEncoder(conn *Conn) *responseEncoder {
	enc := new(responseEncoder)
	conn.startResponse(enc, new(imapwire.Encoder))
	return enc
}

// startResponse is newResponseEncoder into enc and wireEnc, which a
// writer of many responses (FetchWriter) reuses for each (Posthouse
// patch: three allocations per FETCH response were a fifth of the time a
// FETCH of flags spent in its responses).
func (conn *Conn) startResponse(enc *responseEncoder, wireEnc *imapwire.Encoder) {
	conn.mutex.Lock()
	quotedUTF8 := conn.enabled.Has(imap.CapIMAP4rev2) || conn.enabled.Has(imap.CapUTF8Accept)
	conn.mutex.Unlock()

	conn.encMutex.Lock() // released by responseEncoder.end
	wireEnc.Reset(conn.bw, imapwire.ConnSideServer)
	wireEnc.QuotedUTF8 = quotedUTF8
	wireEnc.NoFlush = conn.corked.Load()
	conn.setWriteTimeout(respWriteTimeout)
	*enc = responseEncoder{Encoder: wireEnc, conn: conn}
}

func (enc *responseEncoder) end() {
	if enc.Encoder == nil {
		panic("imapserver: responseEncoder.end called twice")
	}
	enc.Encoder = nil
	enc.conn.setWriteTimeout(0)
	enc.conn.encMutex.Unlock()
}

func (enc *responseEncoder) Literal(size int64) io.WriteCloser {
	enc.conn.setWriteTimeout(literalWriteTimeout)
	return literalWriter{
		WriteCloser: enc.Encoder.Literal(size, nil),
		conn:        enc.conn,
	}
}

type literalWriter struct {
	io.WriteCloser
	conn *Conn
}

func (lw literalWriter) Close() error {
	lw.conn.setWriteTimeout(respWriteTimeout)
	return lw.WriteCloser.Close()
}

func writeStatusResp(enc *imapwire.Encoder, tag string, statusResp *imap.StatusResponse) error {
	if tag != "" || statusResp.Type == imap.StatusResponseTypeBye {
		enc.NoFlush = false // a command's end, or the connection's
	}
	if tag == "" {
		tag = "*"
	}
	enc.Atom(tag).SP().Atom(string(statusResp.Type)).SP()
	if statusResp.Code != "" {
		enc.Atom(fmt.Sprintf("[%v]", statusResp.Code)).SP()
	}
	enc.Text(statusResp.Text)
	return enc.CRLF()
}

func writeCapabilityOK(enc *imapwire.Encoder, tag string, caps []imap.Cap, text string) error {
	return writeCapabilityStatus(enc, tag, imap.StatusResponseTypeOK, caps, text)
}

func writeCapabilityStatus(enc *imapwire.Encoder, tag string, typ imap.StatusResponseType, caps []imap.Cap, text string) error {
	if tag != "" {
		enc.NoFlush = false
	}
	if tag == "" {
		tag = "*"
	}

	enc.Atom(tag).SP().Atom(string(typ)).SP().Special('[').Atom("CAPABILITY")
	for _, c := range caps {
		enc.SP().Atom(string(c))
	}
	enc.Special(']').SP().Text(text)
	return enc.CRLF()
}

func writeContReq(enc *imapwire.Encoder, text string) error {
	enc.NoFlush = false // the client waits for it
	return enc.Atom("+").SP().Text(text).CRLF()
}

// uncork ends a command's batching: what its responses left in the
// buffer (a handler may end without a tagged reply of its own) is written
// now. (Posthouse patch.)
func (c *Conn) uncork() {
	c.corked.Store(false)
	c.encMutex.Lock()
	defer c.encMutex.Unlock()
	if c.bw.Buffered() > 0 {
		c.bw.Flush()
	}
}

func newClientBugError(text string) error {
	return &imap.Error{
		Type: imap.StatusResponseTypeBad,
		Code: imap.ResponseCodeClientBug,
		Text: text,
	}
}

// UpdateWriter writes status updates.
type UpdateWriter struct {
	conn         *Conn
	allowExpunge bool
}

// WriteExpunge writes an EXPUNGE response.
func (w *UpdateWriter) WriteExpunge(seqNum uint32) error {
	if !w.allowExpunge {
		return fmt.Errorf("imapserver: EXPUNGE updates are not allowed in this context")
	}
	return w.conn.writeExpunge(seqNum)
}

// WriteNumMessages writes an EXISTS response.
func (w *UpdateWriter) WriteNumMessages(n uint32) error {
	return w.conn.writeExists(n)
}

// WriteNumRecent writes an RECENT response (not used in IMAP4rev2, will be ignored).
func (w *UpdateWriter) WriteNumRecent(n uint32) error {
	if w.conn.enabled.Has(imap.CapIMAP4rev2) || !w.conn.server.options.caps().Has(imap.CapIMAP4rev1) {
		return nil
	}
	return w.conn.writeObsoleteRecent(n)
}

// WriteMailboxFlags writes a FLAGS response.
func (w *UpdateWriter) WriteMailboxFlags(flags []imap.Flag) error {
	return w.conn.writeFlags(flags)
}

// WriteMessageFlags writes a FETCH response with FLAGS.
func (w *UpdateWriter) WriteMessageFlags(seqNum uint32, uid imap.UID, flags []imap.Flag) error {
	return w.WriteMessageFlagsModSeq(seqNum, uid, flags, 0)
}

// A FETCH of many messages writes its responses through a 64 KiB buffer
// borrowed from a pool after its first bigWriterAfter responses, and gives
// it back when the command ends; small FETCHes and idle connections keep
// the connection's 4 KiB one. (Posthouse patch: a FETCH of flags over
// 100,000 messages went out in 4 KiB writes, each waking the client for
// one read.)
const (
	bigWriterSize  = 64 << 10
	bigWriterAfter = 64
)

var bigWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bigWriterSize) }}

// borrowBigWriter makes bw a pooled 64 KiB writer; what the connection's
// own writer holds is flushed first. No response may be open.
func (c *Conn) borrowBigWriter() {
	c.encMutex.Lock()
	defer c.encMutex.Unlock()
	if c.small != nil || c.bw.Flush() != nil {
		return // already borrowed, or the connection failed: keep it
	}
	big := bigWriters.Get().(*bufio.Writer)
	big.Reset(c.w)
	c.small, c.bw = c.bw, big
}

// returnBigWriter flushes a borrowed writer and gives it back.
func (c *Conn) returnBigWriter() error {
	c.encMutex.Lock()
	defer c.encMutex.Unlock()
	if c.small == nil {
		return nil
	}
	big := c.bw
	err := big.Flush()
	c.bw, c.small = c.small, nil
	big.Reset(nil)
	bigWriters.Put(big)
	return err
}
