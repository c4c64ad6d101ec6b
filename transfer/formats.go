package transfer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/useremail/useremail/store"
)

// readUseremail decodes an export a user at a time and hands each to add.
func readUseremail(ctx context.Context, r io.Reader, add func(store.ImportedUser, string) error, sum *Summary) error {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	dec.DisallowUnknownFields()
	if err := expectDelim(dec, '{', "the document"); err != nil {
		return err
	}
	format := ""
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return syntaxError(err)
		}
		switch key {
		case "format":
			if err := dec.Decode(&format); err != nil {
				return syntaxError(err)
			}
			if format != Format {
				return fmt.Errorf("import: format %q is not %q", format, Format)
			}
		case "users":
			if format == "" {
				return fmt.Errorf("import: \"format\": %q must come before \"users\"", Format)
			}
			if err := expectDelim(dec, '[', "users"); err != nil {
				return err
			}
			for i := 0; dec.More(); i++ {
				if err := ctx.Err(); err != nil {
					return err
				}
				var u User
				record := fmt.Sprintf("users[%d]", i)
				if err := dec.Decode(&u); err != nil {
					return invalid(record, "%v", err)
				}
				record = fmt.Sprintf("users[%d] (id %d)", i, u.ID)
				iu, scheme, err := fromUser(record, u)
				if err != nil {
					return err
				}
				sum.Hashes[scheme]++
				if err := add(iu, record); err != nil {
					return err
				}
			}
			if err := expectDelim(dec, ']', "users"); err != nil {
				return err
			}
		default:
			return fmt.Errorf("import: unknown member %q in a %s document", key, Format)
		}
	}
	if format == "" {
		return fmt.Errorf("import: not a %s document: no \"format\"", Format)
	}
	return expectEnd(dec, '}')
}

// fromUser checks an exported user and returns it as the store inserts it.
func fromUser(record string, u User) (store.ImportedUser, string, error) {
	if u.ID <= 0 {
		return store.ImportedUser{}, "", invalid(record, "id must be a positive integer")
	}
	if u.DateJoined.IsZero() {
		return store.ImportedUser{}, "", invalid(record, "date_joined is missing")
	}
	hash, scheme, err := checkHash(record, u.PasswordHash)
	if err != nil {
		return store.ImportedUser{}, "", err
	}
	lang, err := checkLanguage(record, u.Language)
	if err != nil {
		return store.ImportedUser{}, "", err
	}
	var set addressSet
	primaries := 0
	for _, e := range u.Emails {
		if e.Primary {
			primaries++
		}
		if err := set.add(e.Email, e.Verified, e.Primary); err != nil {
			return store.ImportedUser{}, "", invalid(record, "%v", err)
		}
	}
	if primaries != 1 {
		return store.ImportedUser{}, "", invalid(record, "has %d primary addresses, want exactly one", primaries)
	}
	return store.ImportedUser{ID: u.ID, DateJoined: u.DateJoined, PasswordHash: hash, Language: lang, Emails: set.list}, scheme, nil
}

// djangoRecord is one element of a dumpdata array.
type djangoRecord struct {
	Model  string          `json:"model"`
	PK     json.Number     `json:"pk"`
	Fields json.RawMessage `json:"fields"`
}

// djangoUserFields are the fields of auth.user that matter here.
type djangoUserFields struct {
	Password   string `json:"password"`
	Email      string `json:"email"`
	IsActive   *bool  `json:"is_active"`
	DateJoined string `json:"date_joined"`
}

// djangoAddressFields are those of allauth's account.emailaddress.
type djangoAddressFields struct {
	User     int64  `json:"user"`
	Email    string `json:"email"`
	Verified bool   `json:"verified"`
	Primary  bool   `json:"primary"`
}

// djangoUser is what the join keeps of a user until the dump ends.
type djangoUser struct {
	record     string
	dateJoined time.Time
	hash       string
	scheme     string
	email      string
	addrs      []djangoAddress
}

type djangoAddress struct {
	record            string
	email             string
	verified, primary bool
}

// readDjango decodes a dumpdata array a record at a time, joins users with
// their allauth addresses and hands the users to add in id order.
func readDjango(ctx context.Context, r io.Reader, add func(store.ImportedUser, string) error, sum *Summary) error {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	dec.UseNumber()
	if err := expectDelim(dec, '[', "a Django dump"); err != nil {
		return err
	}
	users := map[int64]*djangoUser{}
	inactive := map[int64]bool{}
	var orphans []djangoAddress // addresses of users not (yet) seen
	var orphanUsers []int64
	for i := 1; dec.More(); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		var rec djangoRecord
		record := fmt.Sprintf("record %d", i)
		if err := dec.Decode(&rec); err != nil {
			return invalid(record, "%v", err)
		}
		pk, err := rec.PK.Int64()
		record = fmt.Sprintf("record %d (%s pk %s)", i, rec.Model, rec.PK)
		switch rec.Model {
		case "auth.user":
			if err != nil || pk <= 0 {
				return invalid(record, "pk must be a positive integer")
			}
			var f djangoUserFields
			if err := json.Unmarshal(rec.Fields, &f); err != nil {
				return invalid(record, "%v", err)
			}
			if users[pk] != nil || inactive[pk] {
				return &RecordError{Code: "import_conflict", Record: record, Reason: fmt.Sprintf("user id %d appears twice in the file", pk)}
			}
			if f.IsActive != nil && !*f.IsActive {
				inactive[pk] = true
				sum.Inactive++
				continue
			}
			joined, err := parseDjangoTime(f.DateJoined)
			if err != nil {
				return invalid(record, "date_joined %q: %v", f.DateJoined, err)
			}
			hash, scheme, err := checkHash(record, f.Password)
			if err != nil {
				return err
			}
			users[pk] = &djangoUser{record: record, dateJoined: joined, hash: hash, scheme: scheme, email: strings.TrimSpace(f.Email)}
		case "account.emailaddress":
			var f djangoAddressFields
			if err := json.Unmarshal(rec.Fields, &f); err != nil {
				return invalid(record, "%v", err)
			}
			a := djangoAddress{record: record, email: f.Email, verified: f.Verified, primary: f.Primary}
			if u := users[f.User]; u != nil {
				u.addrs = append(u.addrs, a)
			} else if !inactive[f.User] {
				// The dump may list addresses before users.
				orphans = append(orphans, a)
				orphanUsers = append(orphanUsers, f.User)
			}
		default:
			sum.Ignored++
		}
	}
	if err := expectDelim(dec, ']', "a Django dump"); err != nil {
		return err
	}
	if err := expectEnd(dec, 0); err != nil {
		return err
	}
	for i, a := range orphans {
		u := users[orphanUsers[i]]
		switch {
		case u != nil:
			u.addrs = append(u.addrs, a)
		case !inactive[orphanUsers[i]]:
			return invalid(a.record, "its user %d is not in the file", orphanUsers[i])
		}
	}
	ids := make([]int64, 0, len(users))
	for id := range users {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		u := users[id]
		delete(users, id)
		emails, err := u.addresses()
		if err != nil {
			return err
		}
		if len(emails) == 0 {
			sum.NoAddress++
			continue
		}
		sum.Hashes[u.scheme]++
		if err := add(store.ImportedUser{ID: id, DateJoined: u.dateJoined, PasswordHash: u.hash,
			Language: store.DefaultLanguage, Emails: emails}, u.record); err != nil {
			return err
		}
	}
	return nil
}

// addresses resolves a Django user's addresses the way django-allauth
// reads them: its EmailAddress rows, the one marked primary first; without
// one, User.email is the primary (and is kept as an unverified address when
// no row has it); a user without rows has User.email as the primary,
// unverified.
func (u *djangoUser) addresses() ([]store.ImportedEmail, error) {
	var set addressSet
	sort.SliceStable(u.addrs, func(i, j int) bool { return u.addrs[i].primary && !u.addrs[j].primary })
	for _, a := range u.addrs {
		if a.primary {
			if err := set.add(a.email, a.verified, true); err != nil {
				return nil, invalid(a.record, "%v", err)
			}
		}
	}
	if u.email != "" {
		if err := set.add(u.email, false, true); err != nil {
			return nil, invalid(u.record, "%v", err)
		}
	}
	for _, a := range u.addrs {
		if err := set.add(a.email, a.verified, false); err != nil {
			return nil, invalid(a.record, "%v", err)
		}
	}
	if len(set.list) > 0 && set.primary() < 0 {
		first := 0
		for i, e := range set.list {
			if e.Verified {
				first = i
				break
			}
		}
		set.list[first].Primary = true
	}
	return set.list, nil
}

// parseDjangoTime parses a DateTimeField as dumpdata writes it: ISO 8601,
// with an offset or Z under USE_TZ, naive (taken as UTC) without.
func parseDjangoTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("not an ISO 8601 time")
}

func expectDelim(dec *json.Decoder, want json.Delim, what string) error {
	tok, err := dec.Token()
	if err != nil {
		return syntaxError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("import: %s: want %q, found %v", what, want, tok)
	}
	return nil
}

// expectEnd reads the closing delimiter (0: none) and checks that nothing
// follows the document.
func expectEnd(dec *json.Decoder, closing json.Delim) error {
	if closing != 0 {
		if err := expectDelim(dec, closing, "the document"); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("import: data after the end of the document")
	}
	return nil
}

func syntaxError(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("import: not valid JSON: %w", err)
}
