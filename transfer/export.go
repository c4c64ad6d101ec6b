// Package transfer moves users in and out of a store: Export writes every
// user with password hash, language and addresses as one JSON document
// (useremail-export/1), Import reads that or a Django dump (auth.user with
// django-allauth's account.emailaddress, which is optional) in one
// transaction, all or nothing.
//
// Both stream: Export reads the store in keyset pages and encodes a user at
// a time; Import decodes one record at a time (json.Decoder) and writes
// batches in multi-row INSERTs, so that memory does not grow with the
// number of users. A Django dump lists users and addresses apart: they are
// staged in temporary tables of the import's transaction and joined there.
//
// It is called by cmd and imports store, password and address; it knows
// nothing of HTTP or the generated API types.
package transfer

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/useremail/useremail/store"
)

// Format is the value of the "format" member of an export.
const Format = "useremail-export/1"

// exportPage is how many users Export reads per statement pair.
const exportPage = 1000

// Document is an export as a whole, for readers that take it at once.
type Document struct {
	Format string `json:"format"`
	Users  []User `json:"users"`
}

// User is one user of an export.
type User struct {
	ID           int64     `json:"id"`
	DateJoined   time.Time `json:"date_joined"`
	PasswordHash string    `json:"password_hash"`
	Language     string    `json:"language"`
	Emails       []Email   `json:"emails"`
}

// Email is one address of a User.
type Email struct {
	Email    string `json:"email"`
	Verified bool   `json:"verified"`
	Primary  bool   `json:"primary"`
}

// Export writes every user of db to w as {"format": Format, "users": […]},
// one user a line, in id order, from one consistent snapshot, and returns
// how many it wrote. progress (nil: none) gets a line at most every second
// and a last one.
func Export(ctx context.Context, db *store.DB, w io.Writer, progress io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	p := newProgress(progress, "export")
	var n int64
	err := db.Snapshot(ctx, func(q *store.Queries) error {
		total, err := q.CountUsers(ctx)
		if err != nil {
			return err
		}
		p.total = total
		if _, err := fmt.Fprintf(bw, "{\"format\":%q,\"users\":[\n", Format); err != nil {
			return err
		}
		var after int64
		for {
			page, err := q.ExportPage(ctx, after, exportPage)
			if err != nil {
				return err
			}
			for _, u := range page {
				if n > 0 {
					if err := bw.WriteByte(','); err != nil {
						return err
					}
				}
				if err := enc.Encode(toUser(u)); err != nil {
					return err
				}
				n++
			}
			p.at(n)
			if len(page) < exportPage {
				break
			}
			after = page[len(page)-1].ID
		}
		_, err = bw.WriteString("]}\n")
		return err
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return n, fmt.Errorf("export: %w", err)
	}
	p.done(fmt.Sprintf("export: %d users written", n))
	return n, nil
}

func toUser(u store.ExportedUser) User {
	out := User{ID: u.ID, DateJoined: u.DateJoined.UTC(), PasswordHash: u.PasswordHash, Language: u.Language,
		Emails: make([]Email, len(u.Emails))}
	for i, e := range u.Emails {
		out.Emails[i] = Email{Email: e.Email, Verified: e.Verified, Primary: e.Primary}
	}
	return out
}

// progress writes a line at most every second while a long run goes on.
type progress struct {
	w     io.Writer
	what  string
	total int64 // 0: unknown
	start time.Time
	last  time.Time
	from  time.Time // since when at's rate counts
}

func newProgress(w io.Writer, what string) *progress {
	now := time.Now()
	return &progress{w: w, what: what, start: now, last: now, from: now}
}

func (p *progress) at(n int64) {
	if p == nil || p.w == nil || time.Since(p.last) < time.Second {
		return
	}
	p.last = time.Now()
	rate := float64(n) / time.Since(p.from).Seconds()
	if p.total > 0 {
		fmt.Fprintf(p.w, "%s: %d of %d users (%.0f a second)\n", p.what, n, p.total, rate)
	} else {
		fmt.Fprintf(p.w, "%s: %d users (%.0f a second)\n", p.what, n, rate)
	}
}

// restart makes at's rate count from now (a second phase).
func (p *progress) restart() {
	if p != nil {
		p.from = time.Now()
	}
}

// tick writes line() at most every second.
func (p *progress) tick(line func() string) {
	if p == nil || p.w == nil || time.Since(p.last) < time.Second {
		return
	}
	p.last = time.Now()
	fmt.Fprintln(p.w, line())
}

func (p *progress) done(line string) {
	if p.w != nil {
		fmt.Fprintf(p.w, "%s in %.2fs\n", line, time.Since(p.start).Seconds())
	}
}
