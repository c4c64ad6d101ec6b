package server

import (
	"math/rand/v2"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"

	"github.com/useremail/useremail/gen"
)

// TestRouteIndexAgreesWithFindRoute checks the route index against the
// lookup it replaces: for every request it answers, FindRoute must give the
// same route and parameters. Paths are the spec's templates filled with
// plain, empty, encoded and slash-carrying values, with and without a
// trailing slash or an extra segment, and random paths over the spec's
// words, in every method.
func TestRouteIndexAgreesWithFindRoute(t *testing.T) {
	spec, err := gen.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	spec.Servers = nil
	router, err := gorillamux.NewRouter(spec)
	if err != nil {
		t.Fatal(err)
	}
	idx := newRouteIndex(spec)
	e := echo.New()
	gen.RegisterHandlers(e, gen.NewStrictHandler(nil, nil))

	values := []string{"1", "42", "a", "emails", "email-verify", "email-set-primary", "send-verification",
		"v1.abc_DEF-123", "NDI", "%2F", "a%2Fb", "a%20b", "%41", "ü", "a.b", "a:b", "a;b", "-1", "1e3", ""}
	var paths []string
	for _, tmpl := range spec.Paths.InMatchingOrder() {
		for _, v := range values {
			for _, w := range []string{"1", v} {
				p := fill(tmpl, v, w)
				paths = append(paths, p, p+"/", strings.TrimSuffix(p, "/"), p+"x", p+"/x/", "/"+p, p+"//")
			}
		}
	}
	words := append([]string{"users", "auth", "login", "logout", "session", "primary-email", "email-change",
		"openapi.yaml", "healthz", "readyz", "metrics", "docs"}, values...)
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b strings.Builder
		for range 1 + rnd.IntN(6) {
			b.WriteString("/" + words[rnd.IntN(len(words))])
		}
		if rnd.IntN(2) == 0 {
			b.WriteString("/")
		}
		paths = append(paths, b.String())
	}

	methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
	answered := map[string]int{}
	for _, p := range paths {
		for _, m := range methods {
			req := httptest.NewRequest(m, "http://useremail.test"+p, nil)
			c := e.NewContext(req, httptest.NewRecorder())
			e.Router().Find(m, echo.GetPath(req), c)
			route, params, ok := idx.find(c, req)
			if !ok {
				continue
			}
			answered[m+" "+route.Path]++
			want, wantParams, err := router.FindRoute(req)
			switch {
			case err != nil:
				t.Errorf("%s %s: index answered %s, FindRoute: %v", m, p, route.Path, err)
			case want.Path != route.Path || want.Method != route.Method || want.Operation != route.Operation ||
				want.PathItem != route.PathItem || want.Spec != route.Spec || want.Server != route.Server:
				t.Errorf("%s %s: index answered %s %s, FindRoute %s %s", m, p, route.Method, route.Path, want.Method, want.Path)
			case !reflect.DeepEqual(params, wantParams):
				t.Errorf("%s %s: index params %v, FindRoute %v", m, p, params, wantParams)
			}
		}
	}
	// The hot routes are the ones the index is for.
	for _, r := range []string{
		"GET /users/{id}/emails/", "POST /users/{id}/emails/", "GET /users/{id}/primary-email/",
		"POST /users/email-verify/{signed_email}/{user_id_key}", "POST /auth/login/",
	} {
		if answered[r] == 0 {
			t.Errorf("the index never answered for %s", r)
		}
	}
	// Colliding templates stay with FindRoute.
	for _, r := range []string{"GET /users/{id}/emails/{email_id}/", "POST /users/email-set-primary/{signed_email}/{user_id_key}/"} {
		if answered[r] != 0 {
			t.Errorf("the index answered for %s, whose template collides with another", r)
		}
	}
}

// fill replaces the first parameter of a template with v, the others with w.
func fill(tmpl, v, w string) string {
	segs := strings.Split(tmpl, "/")
	first := true
	for i, s := range segs {
		if strings.HasPrefix(s, "{") {
			if first {
				segs[i], first = v, false
			} else {
				segs[i] = w
			}
		}
	}
	return strings.Join(segs, "/")
}

// BenchmarkRouteLookup compares the route index with the FindRoute it
// stands in for, on the hot routes.
func BenchmarkRouteLookup(b *testing.B) {
	spec, err := gen.GetSpec()
	if err != nil {
		b.Fatal(err)
	}
	spec.Servers = nil
	router, err := gorillamux.NewRouter(spec)
	if err != nil {
		b.Fatal(err)
	}
	idx := newRouteIndex(spec)
	e := echo.New()
	gen.RegisterHandlers(e, gen.NewStrictHandler(nil, nil))
	for _, r := range []struct{ method, path string }{
		{"GET", "/users/42/emails/"},
		{"POST", "/users/email-verify/v1.abc_DEF-123/NDI"},
	} {
		req := httptest.NewRequest(r.method, "http://useremail.test"+r.path, nil)
		c := e.NewContext(req, httptest.NewRecorder())
		e.Router().Find(r.method, echo.GetPath(req), c)
		b.Run("index "+r.method+" "+r.path, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, ok := idx.find(c, req); !ok {
					b.Fatal("not found")
				}
			}
		})
		b.Run("FindRoute "+r.method+" "+r.path, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := router.FindRoute(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
