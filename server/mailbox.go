package server

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/useremail/useremail/pages"
)

// The dev mailbox: with Config.Mailbox (dev mode only), /dev/mailbox/
// lists the mails sent, newest first, with their links clickable, and
// /dev/mailbox.json gives them to end-to-end tests. Otherwise both are 404.

// mailboxEntry is one mail of /dev/mailbox.json.
type mailboxEntry struct {
	ID        int64     `json:"id"`
	To        string    `json:"to"`
	Subject   string    `json:"subject"`
	Kind      string    `json:"kind"`
	Links     []string  `json:"links"`
	CreatedAt time.Time `json:"created_at"`
}

func (s *Server) registerMailbox(e *echo.Echo) {
	e.GET("/dev/mailbox", func(c echo.Context) error {
		if s.cfg.Mailbox == nil {
			return errRouteNotFound
		}
		return redirect(c, "/dev/mailbox/")
	})
	e.GET("/dev/mailbox/", s.mailboxPage)
	e.GET("/dev/mailbox.json", s.mailboxJSON)
	e.Any("/dev/*", func(echo.Context) error { return errRouteNotFound })
}

func (s *Server) mailboxPage(c echo.Context) error {
	if s.cfg.Mailbox == nil {
		return errRouteNotFound
	}
	l := s.localizer(c.Request())
	data := pages.Mailbox{Common: s.common(l, l.T("page.mailbox.title"))}
	for _, m := range s.cfg.Mailbox.Mails() {
		data.Mails = append(data.Mails, pages.Mail{ID: m.ID, To: m.To, Subject: m.Subject, Kind: m.Kind, Links: m.Links, CreatedAt: m.CreatedAt})
	}
	return s.writePage(c, http.StatusOK, "mailbox", data)
}

func (s *Server) mailboxJSON(c echo.Context) error {
	if s.cfg.Mailbox == nil {
		return errRouteNotFound
	}
	out := []mailboxEntry{}
	for _, m := range s.cfg.Mailbox.Mails() {
		links := m.Links
		if links == nil {
			links = []string{}
		}
		out = append(out, mailboxEntry{ID: m.ID, To: m.To, Subject: m.Subject, Kind: m.Kind, Links: links, CreatedAt: m.CreatedAt})
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, out)
}
