package server

import (
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"
)

// routeIndex answers the spec route of a request that Echo has routed
// already, by Echo's path template, instead of FindRoute's regular
// expression per spec path. It answers only where its answer is provably
// FindRoute's (see newRouteIndex and find); elsewhere FindRoute decides.
type routeIndex map[string]*indexedRoute // by method + " " + Echo's path template

// indexedRoute is one spec operation that routeIndex may answer for.
type indexedRoute struct {
	route *routers.Route
	parts []pathPart
}

// pathPart is a literal piece of a spec path template, or a parameter
// that stands for one whole segment.
type pathPart struct {
	literal string
	param   string // the parameter's name; "" for a literal
}

// newRouteIndex indexes the operations of spec whose path templates no
// other template of spec can collide with: FindRoute takes the first spec
// path that matches, in its own order.
func newRouteIndex(spec *openapi3.T) routeIndex {
	paths := spec.Paths.InMatchingOrder()
	segments := make(map[string][]string, len(paths))
	for _, p := range paths {
		segments[p] = strings.Split(p, "/")
	}
	idx := routeIndex{}
	for _, p := range paths {
		parts, ok := parseTemplate(p)
		if !ok {
			continue
		}
		alone := true
		for _, other := range paths {
			if other != p && mayCollide(segments[p], segments[other]) {
				alone = false
				break
			}
		}
		if !alone {
			continue
		}
		item := spec.Paths.Value(p)
		for method, op := range item.Operations() {
			idx[method+" "+echoPath(parts)] = &indexedRoute{
				// What FindRoute returns for a match (the spec has no servers).
				route: &routers.Route{Spec: spec, Path: p, PathItem: item, Method: method, Operation: op},
				parts: parts,
			}
		}
	}
	return idx
}

// parseTemplate splits a spec path template into literals and parameters.
// It refuses what it does not model exactly (a parameter that is not a
// whole segment, a gorilla/mux pattern): those paths stay with FindRoute.
func parseTemplate(path string) ([]pathPart, bool) {
	var parts []pathPart
	var lit strings.Builder
	for i, seg := range strings.Split(path, "/") {
		if i > 0 {
			lit.WriteByte('/')
		}
		if !strings.ContainsAny(seg, "{}") {
			lit.WriteString(seg)
			continue
		}
		name, ok := paramName(seg)
		if !ok {
			return nil, false
		}
		if lit.Len() > 0 {
			parts = append(parts, pathPart{literal: lit.String()})
			lit.Reset()
		}
		parts = append(parts, pathPart{param: name})
	}
	if lit.Len() > 0 {
		parts = append(parts, pathPart{literal: lit.String()})
	}
	return parts, true
}

// paramName returns name for a segment "{name}" with a plain name.
func paramName(seg string) (string, bool) {
	if len(seg) < 3 || seg[0] != '{' || seg[len(seg)-1] != '}' {
		return "", false
	}
	name := seg[1 : len(seg)-1]
	if strings.ContainsAny(name, "{}:/") {
		return "", false
	}
	return name, true
}

// mayCollide reports whether some request path could match both
// templates, given as segments: a parameter matches any one non-empty
// segment. Segments that are neither literal nor a whole parameter count
// as matching anything.
func mayCollide(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		px, py := strings.ContainsAny(x, "{}"), strings.ContainsAny(y, "{}")
		switch {
		case !px && !py:
			if x != y {
				return false
			}
		case px && py:
			// Both match some same segment.
		default:
			if px {
				x, y = y, x // x the literal, y the parameter
			}
			if _, whole := paramName(y); whole && x == "" {
				return false // a parameter never matches an empty segment
			}
		}
	}
	return true
}

// echoPath is the template as Echo registers it: {name} becomes :name.
func echoPath(parts []pathPart) string {
	var b strings.Builder
	for _, p := range parts {
		if p.param != "" {
			b.WriteString(":" + p.param)
		} else {
			b.WriteString(p.literal)
		}
	}
	return b.String()
}

// find returns the spec route and path parameters of the request Echo
// routed in c, or ok false when FindRoute must decide. It answers for a path
// in plain form (FindRoute matches the escaped path, Echo the decoded one)
// that is the template filled with Echo's values, each one whole non-empty
// segment (Echo's last parameter can swallow the rest of the path).
func (idx routeIndex) find(c echo.Context, req *http.Request) (route *routers.Route, params map[string]string, ok bool) {
	r := idx[req.Method+" "+c.Path()]
	if r == nil || req.URL.RawPath != "" || req.URL.EscapedPath() != req.URL.Path {
		return nil, nil, false
	}
	path := req.URL.Path
	for _, p := range r.parts {
		if p.param == "" {
			if !strings.HasPrefix(path, p.literal) {
				return nil, nil, false
			}
			path = path[len(p.literal):]
			continue
		}
		v := c.Param(p.param)
		if v == "" || strings.IndexByte(v, '/') >= 0 || !strings.HasPrefix(path, v) {
			return nil, nil, false
		}
		path = path[len(v):]
		if params == nil {
			params = make(map[string]string, 2)
		}
		params[p.param] = v
	}
	if path != "" {
		return nil, nil, false
	}
	if params == nil {
		params = map[string]string{}
	}
	return r.route, params, true
}
