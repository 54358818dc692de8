package imap

type IDData struct {
	Name        string
	Version     string
	OS          string
	OSVersion   string
	Vendor      string
	SupportURL  string
	Address     string
	Date        string
	Command     string
	Arguments   string
	Environment string

	// Posthouse patch: Other holds the fields RFC 2971 does not define
	// (such as "x-originating-ip"), keyed by lower-case name; the server
	// fills it from the client's ID, the client does not send it.
	Other map[string]string
}
