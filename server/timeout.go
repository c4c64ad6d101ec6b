package server

import (
	"errors"
	"time"

	"github.com/labstack/echo/v4"
)

// DefaultRequestTimeout bounds the work of one request when
// Config.RequestTimeout is unset.
const DefaultRequestTimeout = 10 * time.Second

// deadline answers for the deadline that begin gives every request
// (RequestTimeout) for its database work and its wait for a
// password-hashing slot. A database that is down refuses
// connections at once; one that is slow (locks held, overload) or does not
// answer a new connection would otherwise hold requests and pool
// connections for as long as it likes. Past the deadline the request is
// answered 503 unavailable.
//
// Whatever fails after the deadline (or the client going away) cut it
// short is the deadline's doing, not a bug: it is answered as unavailable
// rather than as an internal error, even where the failure did not come
// back as the store's ErrUnavailable. Failures the handler expected (4xx)
// stand.
func (s *Server) deadline(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		err := next(c)
		if err != nil && ctx.Err() != nil {
			if _, expected := asAPIError(err); !expected {
				// ctx.Err() first: a client that went away is logged as such.
				return errors.Join(ctx.Err(), errUnavailable, err)
			}
		}
		return err
	}
}
