package transfer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/useremail/useremail/store"
)

// readUseremail decodes an export a user at a time and hands each to add;
// it does not use the database.
func readUseremail(ctx context.Context, _ *store.Queries, r io.Reader, add func(store.ImportedUser, string) error, sum *Summary, p *progress) error {
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
	if len(u.Emails) > maxAddresses {
		return store.ImportedUser{}, "", invalid(record, "has %d addresses, more than %d", len(u.Emails), maxAddresses)
	}
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

// stageBatch is how many records readDjango stages per statement.
const stageBatch = 500

// readDjango reads a dumpdata array in two passes over the database: it
// stages every user and address record in temporary tables of q's
// transaction as it decodes them (the dump lists users and addresses
// apart, in any order), then reads the users back in id order, a page at
// a time with their addresses, and hands them to add. Memory holds a batch,
// never the dump.
func readDjango(ctx context.Context, q *store.Queries, r io.Reader, add func(store.ImportedUser, string) error, sum *Summary, p *progress) error {
	if err := q.CreateStaging(ctx); err != nil {
		return err
	}
	if err := stageDjango(ctx, q, r, sum, p); err != nil {
		return err
	}
	if err := q.AnalyzeStaging(ctx); err != nil {
		return err
	}
	p.restart()
	if orphan, err := q.OrphanAddress(ctx); err == nil {
		return invalid(orphan.Record, "its user %d is not in the file", orphan.UserID)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	var afterID, afterSeq int64
	for {
		page, err := q.StagedUsers(ctx, afterID, afterSeq, importBatch)
		if err != nil || len(page) == 0 {
			if err == nil {
				err = q.DropStaging(ctx)
			}
			return err
		}
		addrs, err := q.StagedAddresses(ctx, page[0].ID, page[len(page)-1].ID)
		if err != nil {
			return err
		}
		for _, u := range page {
			var own []store.StagedAddress
			for len(addrs) > 0 && addrs[0].UserID < u.ID {
				addrs = addrs[1:]
			}
			for i := 0; i < len(addrs) && addrs[i].UserID == u.ID; i++ {
				own = append(own, addrs[i])
			}
			if u.Inactive {
				continue
			}
			emails, err := djangoAddresses(u, own)
			if err != nil {
				return err
			}
			if len(emails) == 0 {
				sum.NoAddress++
				continue
			}
			sum.Hashes[u.Scheme]++
			if err := add(store.ImportedUser{ID: u.ID, DateJoined: u.DateJoined, PasswordHash: u.PasswordHash,
				Language: store.DefaultLanguage, Emails: emails}, u.Record); err != nil {
				return err
			}
		}
		afterID, afterSeq = page[len(page)-1].ID, page[len(page)-1].Seq
	}
}

// stageDjango decodes the dump a record at a time into the staging tables.
func stageDjango(ctx context.Context, q *store.Queries, r io.Reader, sum *Summary, p *progress) error {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	dec.UseNumber()
	if err := expectDelim(dec, '[', "a Django dump"); err != nil {
		return err
	}
	var users []store.StagedUser
	var addrs []store.StagedAddress
	flush := func(min int) error {
		if len(users) >= min && len(users) > 0 {
			if err := q.StageUsers(ctx, users); err != nil {
				return err
			}
			users = users[:0]
		}
		if len(addrs) >= min && len(addrs) > 0 {
			if err := q.StageAddresses(ctx, addrs); err != nil {
				return err
			}
			addrs = addrs[:0]
		}
		return nil
	}
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
			u := store.StagedUser{ID: pk, Seq: int64(i), Record: record, Inactive: f.IsActive != nil && !*f.IsActive}
			if u.Inactive {
				sum.Inactive++
			} else {
				if u.DateJoined, err = parseDjangoTime(f.DateJoined); err != nil {
					return invalid(record, "date_joined %q: %v", f.DateJoined, err)
				}
				if u.PasswordHash, u.Scheme, err = checkHash(record, f.Password); err != nil {
					return err
				}
				u.Email = strings.TrimSpace(f.Email)
			}
			users = append(users, u)
		case "account.emailaddress":
			var f djangoAddressFields
			if err := json.Unmarshal(rec.Fields, &f); err != nil {
				return invalid(record, "%v", err)
			}
			addrs = append(addrs, store.StagedAddress{UserID: f.User, Seq: int64(i), Record: record,
				Email: f.Email, Verified: f.Verified, Primary: f.Primary})
		default:
			sum.Ignored++
		}
		if err := flush(stageBatch); err != nil {
			return err
		}
		if i%stageBatch == 0 {
			p.tick(func() string { return fmt.Sprintf("import: %d records of the dump read", i) })
		}
	}
	if err := expectDelim(dec, ']', "a Django dump"); err != nil {
		return err
	}
	if err := expectEnd(dec, 0); err != nil {
		return err
	}
	return flush(0)
}

// djangoAddresses resolves a Django user's addresses the way django-allauth
// reads them: its EmailAddress rows, the one marked primary first; without
// one, User.email is the primary (and is kept as an unverified address when
// no row has it); a user without rows has User.email as the primary,
// unverified.
func djangoAddresses(u store.StagedUser, addrs []store.StagedAddress) ([]store.ImportedEmail, error) {
	if len(addrs) > maxAddresses {
		return nil, invalid(u.Record, "has %d addresses, more than %d", len(addrs), maxAddresses)
	}
	var set addressSet
	for _, a := range addrs {
		if a.Primary {
			if err := set.add(a.Email, a.Verified, true); err != nil {
				return nil, invalid(a.Record, "%v", err)
			}
		}
	}
	if u.Email != "" {
		if err := set.add(u.Email, false, true); err != nil {
			return nil, invalid(u.Record, "%v", err)
		}
	}
	for _, a := range addrs {
		if err := set.add(a.Email, a.Verified, false); err != nil {
			return nil, invalid(a.Record, "%v", err)
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
		return fmt.Errorf("import: %s: want %v, found %v", what, want, tok)
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
