package endpoint

import "crypto/tls"

// sessionTickets encrypts and decrypts the TLS session tickets of every listener of an
// endpoint with one set of ticket keys, so that a ticket one listener issued resumes on
// any other (QUIC or TCP+TLS) and on every connection, including those whose
// configuration Config.TLS.GetConfigForClient returned.
//
// crypto/tls keeps ticket keys per tls.Config: the endpoint's two listener copies of
// Config.TLS (and quic-go's copy per connection) would otherwise each make their own.
// keys is a private copy of Config.TLS made once in New: it holds the keys the caller
// set with SetSessionTicketKeys before New, or else the keys crypto/tls makes itself
// and rotates (a new key every day, each accepted for 7 days).
type sessionTickets struct {
	keys *tls.Config
}

// newSessionTickets returns the ticket keeper for base, or nil when base issues no
// tickets (SessionTicketsDisabled) or wraps them itself (WrapSession or UnwrapSession
// set): crypto/tls then does what base says.
func newSessionTickets(base *tls.Config) *sessionTickets {
	if base.SessionTicketsDisabled || base.WrapSession != nil || base.UnwrapSession != nil {
		return nil
	}
	return &sessionTickets{keys: base.Clone()}
}

// install makes c issue and accept tickets under the shared keys, unless c disables
// tickets or wraps them itself. It reports whether it changed c.
func (t *sessionTickets) install(c *tls.Config) bool {
	if t == nil || c.SessionTicketsDisabled || c.WrapSession != nil || c.UnwrapSession != nil {
		return false
	}
	c.WrapSession = t.keys.EncryptTicket
	c.UnwrapSession = t.keys.DecryptTicket
	return true
}

// forClient applies install to a configuration GetConfigForClient returned, on a copy:
// that configuration is the caller's and may be shared.
func (t *sessionTickets) forClient(c *tls.Config) *tls.Config {
	if t == nil || c == nil || c.SessionTicketsDisabled || c.WrapSession != nil || c.UnwrapSession != nil {
		return c
	}
	c = c.Clone()
	t.install(c)
	return c
}
