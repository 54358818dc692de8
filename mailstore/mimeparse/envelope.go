package mimeparse

import (
	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// envelope builds a message's ENVELOPE (RFC 3501 §7.4.2). The subject is
// the field's own text (unfolded; encoded words stay encoded, so a client
// decodes exactly what the sender wrote), address lists keep their groups
// (ParseAddressList), and the date, Message-ID and In-Reply-To are read by
// go-message.
func envelope(h textproto.Header) *imap.Envelope {
	mh := mail.Header{Header: gomessage.Header{Header: h}}
	date, _ := mh.Date()
	inReplyTo, _ := mh.MsgIDList("In-Reply-To")
	messageID, _ := mh.MessageID()
	return &imap.Envelope{
		Date:      date,
		Subject:   h.Get("Subject"),
		From:      addressField(h, "From"),
		Sender:    addressField(h, "Sender"),
		ReplyTo:   addressField(h, "Reply-To"),
		To:        addressField(h, "To"),
		Cc:        addressField(h, "Cc"),
		Bcc:       addressField(h, "Bcc"),
		InReplyTo: inReplyTo,
		MessageID: messageID,
	}
}

// addressField parses the first field named k.
func addressField(h textproto.Header, k string) []imap.Address {
	return ParseAddressList(h.Get(k))
}
