package server_test

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/useremail/useremail/gen"
	"github.com/useremail/useremail/mail"
	"github.com/useremail/useremail/server/servertest"
	"github.com/useremail/useremail/store"
	"github.com/useremail/useremail/store/storetest"
)

// Spec-driven fuzzing: requests generated from openapi.yaml's operations,
// parameters and schemas, valid ones and every kind of wrong one, sent to a
// real server on a real store under a session, a wrong session or none.
// Whatever the request, no answer may be a 5xx, and every answer must match
// the spec (servertest.Validator).
//
//	go test ./server -run TestSpecFuzz                     # 3,000 requests per store
//	go test ./server -run TestSpecFuzz -fuzzdeep           # 30,000
//	USEREMAIL_FUZZ_REQUESTS=100000 USEREMAIL_FUZZ_SEED=7 go test ./server -run TestSpecFuzz
var (
	fuzzDeep = flag.Bool("fuzzdeep", false, "TestSpecFuzz: send 30,000 requests per store instead of 3,000")
	fuzzSeed = flag.Uint64("fuzzseed", 20261128, "TestSpecFuzz: the random seed (also USEREMAIL_FUZZ_SEED)")
)

func fuzzSettings(t *testing.T) (requests int, seed uint64) {
	requests, seed = 3000, *fuzzSeed
	if *fuzzDeep || os.Getenv("USEREMAIL_FUZZ_DEEP") != "" {
		requests = 30000
	}
	if v := os.Getenv("USEREMAIL_FUZZ_REQUESTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("USEREMAIL_FUZZ_REQUESTS=%q: want a positive number", v)
		}
		requests = n
	}
	if v := os.Getenv("USEREMAIL_FUZZ_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("USEREMAIL_FUZZ_SEED=%q: want a number", v)
		}
		seed = s
	}
	return requests, seed
}

func TestSpecFuzz(t *testing.T) {
	requests, seed := fuzzSettings(t)
	spec, err := gen.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	ops := fuzzOperations(spec)
	if len(ops) < 15 {
		t.Fatalf("found %d operations in the spec", len(ops))
	}
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		// Limits off and room for many addresses, so that requests get past
		// the limits into the handlers (429 answers are tested elsewhere).
		e := newEnv(t, db, withoutLimits(), withMaxEmails(50))
		f := newFuzzer(t, e, ops, seed)
		// The same checks as e.validator, with each finding tied to the
		// request that caused it.
		f.rec = &fuzzFindings{TB: t}
		f.validator = &servertest.Validator{T: f.rec, Base: commonHeaders{t: f.rec, base: http.DefaultTransport}}
		start := time.Now()
		for i := range requests {
			f.step(i)
			if f.failures >= 50 {
				t.Fatalf("stopping after %d failing requests", f.failures)
			}
		}
		f.report(time.Since(start))
		if f.validator.Count() != requests {
			t.Errorf("validated %d responses for %d requests", f.validator.Count(), requests)
		}
	})
}

// fuzzFindings is the test, counting the errors reported through it.
type fuzzFindings struct {
	testing.TB
	n int
}

func (f *fuzzFindings) Errorf(format string, args ...any) {
	f.TB.Helper()
	f.n++
	f.TB.Errorf(format, args...)
}

// fuzzOp is one operation of the spec.
type fuzzOp struct {
	id, method, path string
	op               *openapi3.Operation
	params           openapi3.Parameters // path-level and operation-level
	body             *openapi3.Schema    // of application/json, or nil
	secured          bool
}

func fuzzOperations(spec *openapi3.T) []fuzzOp {
	var ops []fuzzOp
	for _, path := range spec.Paths.Keys() {
		item := spec.Paths.Value(path)
		for method, op := range item.Operations() {
			f := fuzzOp{id: op.OperationID, method: method, path: path, op: op}
			f.params = append(append(f.params, item.Parameters...), op.Parameters...)
			if rb := op.RequestBody; rb != nil && rb.Value != nil {
				if mt := rb.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
					f.body = mt.Schema.Value
				}
			}
			f.secured = op.Security == nil || len(*op.Security) > 0
			ops = append(ops, f)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].id < ops[j].id })
	return ops
}

// fuzzer holds the state of one run: the users and their sessions, the ids
// and links seen so far, and the counts.
type fuzzer struct {
	t   *testing.T
	e   *env
	ops []fuzzOp
	rnd *rand.Rand

	alice, bob *user
	emailIDs   map[int64][]int64 // the users' address ids, refreshed now and then
	links      []mailedLink      // every link mailed so far
	sent       int               // mails harvested

	rec       *fuzzFindings
	validator *servertest.Validator

	counts   map[string]map[int]int // operation → status → requests
	kinds    map[string]int         // kind of request → requests
	failures int
}

func newFuzzer(t *testing.T, e *env, ops []fuzzOp, seed uint64) *fuzzer {
	f := &fuzzer{
		t: t, e: e, ops: ops,
		rnd:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		emailIDs: map[int64][]int64{},
		counts:   map[string]map[int]int{},
		kinds:    map[string]int{},
	}
	f.alice = e.verifiedUser("alice@example.com")
	f.bob = e.verifiedUser("bob@example.com")
	e.addEmail(f.alice, "alice@work.example")
	f.refresh()
	t.Logf("seed %d", seed)
	return f
}

// refresh reads the users' address ids and harvests the mailed links.
func (f *fuzzer) refresh() {
	for _, u := range []*user{f.alice, f.bob} {
		var ids []int64
		for _, em := range f.e.emails(u.id) {
			ids = append(ids, em.ID)
		}
		f.emailIDs[u.id] = ids
	}
	f.e.deliver()
	all := f.e.outbox.all()
	for _, m := range all[f.sent:] {
		for _, l := range m.Links {
			parts := strings.Split(strings.Trim(strings.TrimPrefix(l, publicURL), "/"), "/")
			if len(parts) == 4 {
				token, userKey := parts[2], parts[3]
				if m.Kind == mail.KindPasswordReset { // reset/<uidb64>/<token>/
					token, userKey = userKey, token
				}
				f.links = append(f.links, mailedLink{url: l, kind: m.Kind, to: m.To, token: token, userKey: userKey})
			}
		}
	}
	f.sent = len(all)
}

// fuzzRequest is one generated request.
type fuzzRequest struct {
	kind   string // what was generated, for the counts
	method string
	path   string // escaped, as sent
	header http.Header
	body   []byte
	as     *user // whose session it carries, if any
}

func (f *fuzzer) step(i int) {
	if i%100 == 0 {
		f.refresh()
	}
	var op fuzzOp
	var req fuzzRequest
	switch p := f.rnd.IntN(100); {
	case p < 4:
		op, req = fuzzOp{id: "(unknown path)"}, f.unknownPath()
	case p < 8:
		op = f.ops[f.rnd.IntN(len(f.ops))]
		req = f.request(op)
		req.method = fuzzPick(f.rnd, "PUT", "PATCH", "HEAD", "OPTIONS", "TRACE", "DELETE", "GET", "POST")
		req.kind = "wrong method"
		if f.isDeclared(op.path, req.method) {
			req.method = "PUT" // no operation of the spec takes PUT
		}
		op.id = "(wrong method)"
	default:
		op = f.ops[f.rnd.IntN(len(f.ops))]
		req = f.request(op)
	}
	if op.id == "DeleteAccount" {
		// The users stay: a deletion gets every answer but its 204.
		req.body = bytes.ReplaceAll(req.body, []byte(goodPasswd), []byte("not the password"))
	}
	status := f.send(req)
	if f.counts[op.id] == nil {
		f.counts[op.id] = map[int]int{}
	}
	f.counts[op.id][status]++
	f.kinds[req.kind]++
	// A request that ended a session: log in again, so the run keeps
	// covering the session's operations.
	if (op.id == "Logout" || op.id == "EndSessions") && status == http.StatusNoContent && req.as != nil {
		f.relogin(req.as)
	}
	// A new password (a change, or a reset that also ended the sessions):
	// the users get theirs back, and fresh sessions.
	if (op.id == "ChangePassword" || op.id == "ConfirmPasswordReset") && status/100 == 2 {
		f.restorePasswords()
	}
}

// restorePasswords gives both users goodPasswd again and logs them in anew.
func (f *fuzzer) restorePasswords() {
	hash, err := f.e.cfg.Hasher.Hash(ctx, goodPasswd)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, u := range []*user{f.alice, f.bob} {
		if err := f.e.db.SetPasswordHash(ctx, u.id, hash); err != nil {
			f.t.Fatal(err)
		}
		f.relogin(u)
	}
}

func (f *fuzzer) isDeclared(path, method string) bool {
	for _, op := range f.ops {
		if op.path == path && op.method == method {
			return true
		}
	}
	return false
}

func (f *fuzzer) relogin(u *user) {
	var primary string
	for _, em := range f.e.emails(u.id) {
		if em.Primary {
			primary = em.Email
		}
	}
	fresh := f.e.login(primary)
	*u = *fresh
}

// send sends req through the validator and returns the status.
func (f *fuzzer) send(req fuzzRequest) int {
	t := f.t
	t.Helper()
	// The path goes out as generated: escapes, dots and all.
	r, err := http.NewRequest(req.method, f.e.srv.URL+req.path, bytes.NewReader(req.body))
	if err != nil {
		t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	r.Header = req.header
	if req.body == nil {
		r.Body, r.ContentLength = http.NoBody, 0
	}
	before := f.rec.n
	client := &http.Client{Transport: f.validator, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	failed := f.rec.n > before // the validator reported this one
	if res.StatusCode >= 500 {
		t.Errorf("%s %s -> %d %.300s", req.method, req.path, res.StatusCode, body)
		failed = true
	}
	if failed {
		f.failures++
		t.Logf("the request (%s): %s %.300s\n  header %v\n  body %.300q\n  answer %d %.300s", req.kind, req.method, req.path, req.header, req.body, res.StatusCode, body)
	}
	return res.StatusCode
}

// request generates a request for op: mostly valid, often wrong in one way.
func (f *fuzzer) request(op fuzzOp) fuzzRequest {
	req := fuzzRequest{kind: "valid", method: op.method, header: http.Header{}}
	req.as = f.session(op, &req)
	wrongParam := f.rnd.IntN(100) < 25
	link := f.link(op)
	path := op.path
	for _, p := range op.params {
		if p.Value.In != "path" {
			continue
		}
		value := f.pathValue(p.Value, req.as, link)
		if wrongParam {
			value = f.wrongPathValue(p.Value)
			req.kind = "wrong path parameter"
		}
		path = strings.Replace(path, "{"+p.Value.Name+"}", value, 1)
	}
	req.path = path
	if op.method == http.MethodGet && strings.HasPrefix(op.path, "/users/email-") {
		// The link pages: JSON for API clients, HTML for anything else.
		req.header.Set("Accept", fuzzPick(f.rnd, "application/json", "text/html", "*/*", "", "application/json;q=0, text/html",
			"application/problem+json", "text/*", "image/png", "application/json, text/html;q=0.9", "text/html;level=1;q=0.5, application/json;q=0.6"))
	}
	switch {
	case op.body != nil:
		f.jsonBody(op, &req)
	case f.rnd.IntN(10) == 0:
		// A body where none is expected, also over the size limit: the
		// operation ignores it.
		req.body = []byte(fuzzPick(f.rnd, `{}`, `{"email":"x@example.com"}`, "a=b", "\x00\xff", strings.Repeat("x", 60000), strings.Repeat("x", 70000)))
		req.header.Set("Content-Type", fuzzPick(f.rnd, "application/json", "application/x-www-form-urlencoded", "text/plain"))
		req.kind = "unexpected body"
	}
	return req
}

// session decides the credentials: the right session with its CSRF token
// most of the time for operations that need one, and every wrong variant.
func (f *fuzzer) session(op fuzzOp, req *fuzzRequest) *user {
	h := req.header
	p := f.rnd.IntN(100)
	if !op.secured {
		p = 100 - p/3 // public: mostly no session, sometimes one
		if p > 90 {
			return nil
		}
	}
	cookie := func(pairs ...string) { h.Set("Cookie", strings.Join(pairs, "; ")) }
	u := f.alice
	switch {
	case p < 55:
		cookie("sessionid="+u.sid, "csrftoken="+u.csrf)
		h.Set("X-CSRFToken", u.csrf)
	case p < 62:
		cookie("osessionid=" + u.sid)
		h.Set("X-CSRFToken", u.csrf)
	case p < 68:
		cookie("sessionid="+u.sid, "osessionid="+u.sid)
		h.Set("X-CSRFToken", fuzzPick(f.rnd, "", "wrong", f.bob.csrf, u.csrf+"x", strings.ToUpper(u.csrf)))
		req.kind = "wrong CSRF token"
	case p < 73:
		cookie("sessionid=" + u.sid)
		h.Set("X-CSRFToken", u.csrf)
		h.Set("Origin", fuzzPick(f.rnd, "https://evil.example", "null", "http://useremail.test.evil.example"))
		req.kind = "foreign origin"
	case p < 80:
		u = f.bob // acting on alice's id, mostly
		cookie("sessionid="+u.sid, "csrftoken="+u.csrf)
		h.Set("X-CSRFToken", u.csrf)
	case p < 85:
		cookie(fuzzPick(f.rnd, "sessionid=nope", "sessionid="+f.alice.sid+"; osessionid="+f.bob.sid,
			"sessionid="+strings.Repeat("A", 43), "sessionid=", "sessionid="+f.alice.sid+"x", "osessionid=%01", "sessionid=\"quoted\""))
		h.Set("X-CSRFToken", f.alice.csrf)
		req.kind = "bad session cookie"
		return nil
	default:
		if f.rnd.IntN(2) == 0 {
			h.Set("X-CSRFToken", f.alice.csrf)
		}
		if op.secured {
			req.kind = "no session"
		}
		return nil
	}
	return u
}

// link picks a mailed link for a link operation: mostly one of its own
// kind, sometimes another (a verify link never sets a primary), or none.
func (f *fuzzer) link(op fuzzOp) *mailedLink {
	kind := ""
	switch {
	case strings.HasPrefix(op.path, "/users/email-verify/"):
		kind = mail.KindVerify
	case strings.HasPrefix(op.path, "/users/email-set-primary/"):
		kind = mail.KindChangeEmail
	case strings.HasPrefix(op.path, "/auth/password-reset/{"):
		kind = mail.KindPasswordReset
	}
	if kind == "" || len(f.links) == 0 || f.rnd.IntN(5) == 0 {
		return nil
	}
	var own []mailedLink
	for _, l := range f.links {
		if l.kind == kind {
			own = append(own, l)
		}
	}
	if len(own) > 0 && f.rnd.IntN(5) != 0 {
		return &own[f.rnd.IntN(len(own))]
	}
	return &f.links[f.rnd.IntN(len(f.links))]
}

// pathValue is a valid value for a path parameter.
func (f *fuzzer) pathValue(p *openapi3.Parameter, as *user, link *mailedLink) string {
	owner := f.alice
	if as == f.bob && f.rnd.IntN(2) == 0 {
		owner = f.bob
	}
	switch p.Name {
	case "id":
		if f.rnd.IntN(10) == 0 {
			return strconv.FormatInt(int64(1+f.rnd.IntN(1000)), 10)
		}
		return strconv.FormatInt(owner.id, 10)
	case "email_id":
		ids := f.emailIDs[owner.id]
		if len(ids) == 0 || f.rnd.IntN(8) == 0 {
			return strconv.FormatInt(int64(1+f.rnd.IntN(500)), 10)
		}
		return strconv.FormatInt(ids[f.rnd.IntN(len(ids))], 10)
	case "signed_email", "user_id_key", "token":
		switch {
		case link == nil:
			return url.PathEscape(f.randomString(1, 60))
		case p.Name == "signed_email", p.Name == "token":
			return link.token
		}
		return link.userKey
	}
	if p.Schema != nil && p.Schema.Value != nil && p.Schema.Value.Example != nil {
		return url.PathEscape(fmt.Sprint(p.Schema.Value.Example))
	}
	return "x"
}

// wrongPathValue is a value its schema refuses, or a garbled one.
func (f *fuzzer) wrongPathValue(p *openapi3.Parameter) string {
	s := p.Schema.Value
	if s.Type.Is("integer") {
		return fuzzPick(f.rnd, "0", "-1", "-9223372036854775808", "9223372036854775807", "9223372036854775808",
			"99999999999999999999999999", "1.5", "1e3", "abc", "0x10", "%20", "%201", "1%00", "%E2%80%AE1", "+1", "01", "١", "%FF")
	}
	return fuzzPick(f.rnd, "", ".", "..", "%2e%2e", "%2F", "a%2Fb", "%00", "%FF%FE", "%E2%80%AE", strings.Repeat("A", 3000),
		"v1.0.abc.def", "v2.x.y.z", "NDI", "MA", "LTE", "%F0%9F%98%80", "a%20b", "%3Cscript%3E", "%27%22", "%5Cx",
		url.PathEscape(f.randomString(1, 200)))
}

// jsonBody generates op's body: a valid one, or one wrong in one way.
func (f *fuzzer) jsonBody(op fuzzOp, req *fuzzRequest) {
	req.header.Set("Content-Type", "application/json")
	v := f.valid(op.body, "")
	if req.kind != "valid" {
		// Already wrong in another way: keep the body valid.
		req.body = mustJSON(v)
		return
	}
	switch p := f.rnd.IntN(100); {
	case p < 45:
		req.body = mustJSON(v)
	case p < 55:
		req.kind = "wrong type"
		f.mutateField(op.body, v, func(map[string]any, string, *openapi3.Schema) any {
			return fuzzPick[any](f.rnd, 1, -1.5, true, false, nil, []any{}, map[string]any{}, []any{"a@example.com"}, 1e308)
		})
		req.body = mustJSON(v)
	case p < 65:
		req.kind = "boundary length"
		f.mutateField(op.body, v, func(_ map[string]any, _ string, s *openapi3.Schema) any {
			n := []int{0, int(s.MinLength)}
			if s.MinLength > 0 {
				n = append(n, int(s.MinLength)-1)
			}
			if s.MaxLength != nil {
				n = append(n, int(*s.MaxLength), int(*s.MaxLength)+1, int(*s.MaxLength)*4)
			}
			size := n[f.rnd.IntN(len(n))]
			if s.Format == "email" && size > 13 {
				return strings.Repeat("a", 64) + "@" + strings.Repeat("b", size-65-12) + ".example.com"
			}
			return strings.Repeat(fuzzPick(f.rnd, "a", "é", "😀", " "), size)
		})
		req.body = mustJSON(v)
	case p < 72:
		req.kind = "missing required field"
		if obj, ok := v.(map[string]any); ok && len(op.body.Required) > 0 {
			delete(obj, op.body.Required[f.rnd.IntN(len(op.body.Required))])
		}
		req.body = mustJSON(v)
	case p < 78:
		req.kind = "extra field"
		if obj, ok := v.(map[string]any); ok {
			name := fuzzPick(f.rnd, "EMAIL", "Email", "id", "primary", "verified", "is_primary", "__proto__", "", "password2", "email ")
			obj[name] = fuzzPick[any](f.rnd, "x@example.com", true, 1, nil)
		}
		req.body = mustJSON(v)
	case p < 86:
		req.kind = "strange characters"
		f.mutateField(op.body, v, func(obj map[string]any, name string, _ *openapi3.Schema) any {
			s, _ := obj[name].(string)
			at := 0
			if len(s) > 0 {
				at = f.rnd.IntN(len(s))
			}
			odd := fuzzPick(f.rnd, "\x00", "\u202e", "\u200b", "\ufeff", "\t", "\n", "\r\n", "😀", "e\u0301", "＠", "\u00a0", " ", "\x1b[31m",
				"\ud7ff", "İ", "ß", "Σ", "\u2028", "<script>", "\"", "\\", "%00", "..", "xn--", "ｅ")
			return s[:at] + odd + s[at:]
		})
		req.body = mustJSON(v)
	case p < 92:
		req.kind = "malformed body"
		good := mustJSON(v)
		req.body = []byte(fuzzPick(f.rnd, "", "{", "}", "[]", "null", "true", `"x"`, "1", "{}", "{}{}", string(good)+"x",
			string(good[:len(good)/2]), "\ufeff"+string(good), "{\"email\":\"a\xffb@example.com\"}", `{"email":1e999}`,
			`{"email":"a@example.com","email":"b@example.com"}`, strings.Repeat("[", 5000)+strings.Repeat("]", 5000),
			`{"email":"\ud800@example.com"}`, `{"a":`+strings.Repeat(`{"a":`, 2000)+"1"+strings.Repeat("}", 2001),
			"{\"email\":\"x@example.com\"}\x00", strings.Repeat(" ", 70000)+"{}", string(good)+strings.Repeat(" ", 66000)))
	default:
		req.kind = "wrong content type"
		req.body = mustJSON(v)
		ct := fuzzPick(f.rnd, "", "text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
			"application/json; charset=latin1", "application/JSON", "application/vnd.api+json", "application/problem+json",
			"application/json; charset=utf-8", "application/json;;", "json", "*/*", "text/html")
		if ct == "" {
			req.header.Del("Content-Type")
		} else {
			req.header.Set("Content-Type", ct)
		}
	}
}

// mutateField replaces one field of the object v (chosen at random) with
// what change returns.
func (f *fuzzer) mutateField(s *openapi3.Schema, v any, change func(obj map[string]any, name string, prop *openapi3.Schema) any) {
	obj, ok := v.(map[string]any)
	if !ok || len(s.Properties) == 0 {
		return
	}
	names := make([]string, 0, len(s.Properties))
	for name := range s.Properties {
		names = append(names, name)
	}
	sort.Strings(names)
	name := names[f.rnd.IntN(len(names))]
	obj[name] = change(obj, name, s.Properties[name].Value)
}

// valid generates a value that s accepts; name is the property's name.
func (f *fuzzer) valid(s *openapi3.Schema, name string) any {
	switch {
	case s.Type.Is("object"):
		obj := map[string]any{}
		for prop, ref := range s.Properties {
			if !ref.Value.ReadOnly {
				obj[prop] = f.valid(ref.Value, prop)
			}
		}
		return obj
	case s.Type.Is("integer"):
		return 1 + f.rnd.IntN(100)
	case s.Type.Is("boolean"):
		return f.rnd.IntN(2) == 0
	case s.Type.Is("string"):
		if name == "password" {
			// The users' password mostly, so that logins and changes
			// succeed now and then.
			if f.rnd.IntN(3) != 0 {
				return goodPasswd
			}
			return f.randomString(max(int(s.MinLength), 8), 40)
		}
		if s.Format == "email" || strings.Contains(name, "email") {
			return f.email()
		}
		return f.randomString(max(int(s.MinLength), 1), 40)
	}
	return s.Example
}

// email is an address: the users' own, new ones, and odd but valid ones.
func (f *fuzzer) email() string {
	switch p := f.rnd.IntN(10); {
	case p < 3:
		return fuzzPick(f.rnd, "alice@example.com", "alice@work.example", "bob@example.com", "ALICE@Example.com", " alice@example.com ")
	case p < 8:
		return fmt.Sprintf("fuzz%d@example.com", f.rnd.IntN(200))
	}
	return fuzzPick(f.rnd, "jürgen@bücher.example", "user+tag@example.com", "\"quoted name\"@example.com", "a@b.co",
		"o'brien@example.ie", "x@[192.0.2.1]", "ǆ@example.com", "e\u0301@example.com", "é@example.com", "user@xn--bcher-kva.example")
}

// randomString is text of n to m runes from a mix of alphabets.
func (f *fuzzer) randomString(n, m int) string {
	alphabets := []string{
		"abcdefghijklmnopqrstuvwxyz0123456789",
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ-_.~",
		"äöüßéèçñ漢字カナ😀🏳️‍🌈",
		"\x00\x01\x1f\x7f\u200b\u202e\ufeff\ufffd",
		" /?#%&=+;,:@'\"<>\\",
	}
	size := n + f.rnd.IntN(m-n+1)
	var b strings.Builder
	for range size {
		a := []rune(alphabets[f.rnd.IntN(len(alphabets))])
		b.WriteRune(a[f.rnd.IntN(len(a))])
	}
	return b.String()
}

// unknownPath is a request to a path the spec does not have.
func (f *fuzzer) unknownPath() fuzzRequest {
	id := strconv.FormatInt(f.alice.id, 10)
	path := fuzzPick(f.rnd, "/nope", "/users", "/users/"+id+"/emails", "/users/"+id+"/emails/1", "/users//emails/",
		"/users/"+id+"/emails/1/extra/", "/users/"+id+"/emails/1/send-verification", "/auth/login", "/users/email-verify/a/b/",
		"/users/email-set-primary/a/b", "/users/email-verify/a", "/%2e%2e/etc/passwd", "/users/%2e%2e/", "//users/",
		"/users/"+id+"/./emails/", "/USERS/", "/users/"+id+"/emails/%2F/", "/healthz/", "/openapi.yml", "/docs/x/y",
		"/metrics/", "/"+url.PathEscape(f.randomString(1, 30)))
	req := fuzzRequest{kind: "unknown path", method: fuzzPick(f.rnd, "GET", "POST", "DELETE"), path: path, header: http.Header{}}
	if req.method == "POST" {
		req.body = []byte(`{"email":"x@example.com"}`)
		req.header.Set("Content-Type", "application/json")
	}
	f.session(fuzzOp{secured: true}, &req)
	return req
}

// report logs the counts: requests per operation and status, and per kind.
func (f *fuzzer) report(elapsed time.Duration) {
	t := f.t
	ids := make([]string, 0, len(f.counts))
	total := 0
	byStatus := map[int]int{}
	for id, statuses := range f.counts {
		ids = append(ids, id)
		for st, n := range statuses {
			total += n
			byStatus[st] += n
		}
	}
	sort.Strings(ids)
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests in %v (%.0f/s); by operation and status:\n", total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())
	for _, id := range ids {
		fmt.Fprintf(&b, "  %-28s %5d  %s\n", id, fuzzSum(f.counts[id]), fuzzStatusList(f.counts[id]))
	}
	fmt.Fprintf(&b, "by status: %s\nby kind:", fuzzStatusList(byStatus))
	kinds := make([]string, 0, len(f.kinds))
	for k := range f.kinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(&b, " %s %d;", k, f.kinds[k])
	}
	fmt.Fprintf(&b, "\nlinks mailed: %d", len(f.links))
	t.Log(b.String())
}

func fuzzSum(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func fuzzStatusList(m map[int]int) string {
	statuses := make([]int, 0, len(m))
	for st := range m {
		statuses = append(statuses, st)
	}
	sort.Ints(statuses)
	parts := make([]string, len(statuses))
	for i, st := range statuses {
		parts[i] = fmt.Sprintf("%d×%d", st, m[st])
	}
	return strings.Join(parts, " ")
}

func fuzzPick[T any](r *rand.Rand, options ...T) T { return options[r.IntN(len(options))] }
