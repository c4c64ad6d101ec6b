package server

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// corsAllowHeaders are the request headers a browser app on a trusted
// origin may send: a JSON body and the CSRF token.
const corsAllowHeaders = "Content-Type, X-CSRFToken"

// corsExposeHeaders are the answer's headers its scripts may read.
const corsExposeHeaders = "Retry-After, X-Request-ID"

// corsMaxAge is how long, in seconds, a browser may keep a preflight's
// answer.
const corsMaxAge = "600"

// cors answers cross-origin requests of browser apps on the trusted origins
// (Config.TrustedOrigins) with credentials, on every API path but /admin/:
// a preflight OPTIONS gets 204 with the methods of its path, other requests
// the headers that let the app read the answer. Other origins, and
// /admin/, get no CORS headers at all; the session's CSRF token and the
// Origin check (checkOrigin) still guard every unsafe request.
func (s *Server) cors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if len(s.corsOrigins) == 0 || !isAPIPath(req.URL.Path) || isAdminPath(req.URL.Path) {
			return next(c)
		}
		h := c.Response().Header()
		// Answers differ by Origin: no shared cache may mix them up.
		h.Add("Vary", "Origin")
		origin := req.Header.Get("Origin")
		if origin == "" || !s.corsOrigins[strings.ToLower(origin)] {
			return next(c)
		}
		preflight := req.Method == http.MethodOptions && req.Header.Get("Access-Control-Request-Method") != ""
		if preflight {
			methods := s.allowedMethods(req)
			if methods == "" {
				return next(c) // no such path: 404
			}
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Allow-Methods", methods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
			return c.NoContent(http.StatusNoContent)
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		return next(c)
	}
}

// isAdminPath tells the admin API's paths, which browsers never use.
func isAdminPath(path string) bool {
	return path == "/admin" || strings.HasPrefix(path, "/admin/")
}
