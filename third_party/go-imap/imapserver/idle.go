package imapserver

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

func (c *Conn) handleIdle(dec *imapwire.Decoder) error {
	if !dec.ExpectCRLF() {
		return dec.Err()
	}

	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return err
	}

	// Posthouse patch: updates written while idling go out at once.
	c.corked.Store(false)
	if err := c.writeContReq("idling"); err != nil {
		return err
	}

	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				c.server.logger().Printf("panic idling: %v\n%s", v, debug.Stack())
				done <- fmt.Errorf("imapserver: panic idling")
			}
		}()
		w := &UpdateWriter{conn: c, allowExpunge: true}
		done <- c.session.Idle(w, stop)
	}()

	c.setReadTimeout(c.server.options.idleTimeout())
	line, isPrefix, err := c.br.ReadLine()
	close(stop)
	// Posthouse patch: wait for the session's Idle to return on every path.
	// Upstream returned at once on a read error, so the connection's
	// goroutine closed the session while Idle was still using it.
	idleErr := <-done
	var netErr net.Error
	if err == io.EOF {
		return nil
	} else if errors.As(err, &netErr) && netErr.Timeout() {
		c.state = imap.ConnStateLogout
		c.Bye("Autologout; idle for too long")
		return errAutologout
	} else if err != nil {
		return err
	} else if isPrefix || string(line) != "DONE" {
		return newClientBugError("Syntax error: expected DONE to end IDLE command")
	}

	return idleErr
}
