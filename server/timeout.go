package server

import (
	"errors"
	"time"

	"github.com/labstack/echo/v4"
)

// DefaultRequestTimeout bounds the work of one request when
// Config.RequestTimeout is unset.
const DefaultRequestTimeout = 10 * time.Second

// deadline answers 503 unavailable for a request that its deadline (set by
// begin) or its client's leaving cut short, unless the handler expected its
// failure (4xx). The deadline bounds the database work and the wait for a
// password-hashing slot: a slow database would otherwise hold requests and
// pool connections for as long as it likes.
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
