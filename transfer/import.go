package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"golang.org/x/text/language"

	"github.com/useremail/useremail/address"
	"github.com/useremail/useremail/password"
	"github.com/useremail/useremail/store"
)

// The formats Import reads.
const (
	FormatUseremail = "useremail" // what Export writes
	FormatDjango    = "django"    // manage.py dumpdata auth.user account.emailaddress
)

// Options steer Import.
type Options struct {
	Format   string    // FormatUseremail (the default) or FormatDjango
	DryRun   bool      // check and insert everything, then roll back
	Progress io.Writer // a line at most every second and a summary; nil: none
	Now      func() time.Time
}

// Summary is what an import did (or, dry, would have done).
type Summary struct {
	Users     int64            // users imported
	Addresses int64            // addresses imported
	Inactive  int64            // Django users skipped for is_active false
	NoAddress int64            // Django users skipped for having no address
	Ignored   int64            // records of other models in a Django dump
	Hashes    map[string]int64 // users by password scheme; "none" for no usable password
	DryRun    bool
}

// String is the summary line of an import.
func (s Summary) String() string {
	schemes := make([]string, 0, len(s.Hashes))
	for k := range s.Hashes {
		schemes = append(schemes, k)
	}
	sort.Strings(schemes)
	var hashes []string
	for _, k := range schemes {
		hashes = append(hashes, fmt.Sprintf("%s %d", k, s.Hashes[k]))
	}
	verb := "imported"
	if s.DryRun {
		verb = "would import (dry run, nothing written)"
	}
	line := fmt.Sprintf("import: %s %d users with %d addresses; skipped %d inactive, %d without an address",
		verb, s.Users, s.Addresses, s.Inactive, s.NoAddress)
	if s.Ignored > 0 {
		line += fmt.Sprintf(", ignored %d records of other models", s.Ignored)
	}
	if len(hashes) > 0 {
		line += "; passwords: " + strings.Join(hashes, ", ")
	}
	return line
}

// RecordError is a record that Import refuses; nothing was written. Code
// is import_conflict for a record the database refuses (an id or an
// address taken), import_invalid for one that is wrong in itself.
type RecordError struct {
	Code   string
	Record string // where: users[41] (id 42), or record 17 (auth.user pk 42)
	Reason string
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("import: %s: %s: %s; nothing was imported", e.Code, e.Record, e.Reason)
}

func invalid(record, format string, args ...any) error {
	return &RecordError{Code: "import_invalid", Record: record, Reason: fmt.Sprintf(format, args...)}
}

// readFunc reads users from r, hands each to add with the name of its
// record, reports progress on p (nil: none), and counts what it skips
// in sum. A reader that uses q runs alone: PostgreSQL's connection carries
// one statement at a time.
type readFunc func(ctx context.Context, q *store.Queries, r io.Reader, add func(store.ImportedUser, string) error, sum *Summary, p *progress) error

// errDryRun rolls back a dry run's transaction.
var errDryRun = errors.New("transfer: dry run")

// importBatch is how many users one multi-row INSERT batch carries.
const importBatch = 500

// Import reads users from r in opts.Format and inserts them with their ids
// and addresses into db in one transaction: all of them, or none when a
// record is refused (a *RecordError naming it). Sequences are moved past
// the ids; no event and no mail results.
func Import(ctx context.Context, db *store.DB, r io.Reader, opts Options) (Summary, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var read readFunc
	concurrent := false
	switch opts.Format {
	case "", FormatUseremail:
		read, concurrent = readUseremail, true
	case FormatDjango:
		read = readDjango
	default:
		return Summary{}, fmt.Errorf("import: unknown format %q: want %s or %s", opts.Format, FormatUseremail, FormatDjango)
	}
	var sum Summary
	attempts := 0
	p := newProgress(opts.Progress, "import")
	err := db.WithTx(ctx, func(q *store.Queries) error {
		if attempts++; attempts > 1 {
			// WithTx retries after a deadlock, but r has been read.
			return errors.New("the database aborted the transaction; nothing was imported, run the import again")
		}
		sum = Summary{Hashes: map[string]int64{}, DryRun: opts.DryRun}
		if err := q.PrepareBulkInsert(ctx); err != nil {
			return err
		}
		w := &batchWriter{q: q, now: opts.Now(), progress: p}
		if err := pipeline(ctx, q, r, read, concurrent, &sum, w); err != nil {
			return err
		}
		if opts.DryRun {
			return errDryRun
		}
		return q.MoveUserIDsPast(ctx)
	})
	if errors.Is(err, errDryRun) {
		err = nil
	}
	if err != nil {
		var re *RecordError
		if !errors.As(err, &re) && !strings.HasPrefix(err.Error(), "import:") {
			err = fmt.Errorf("import: %w; nothing was imported", err)
		}
		return Summary{}, err
	}
	p.done(fmt.Sprintf("import: %d users", sum.Users))
	return sum, nil
}

// batch is users read, with the names of their records for errors.
type batch struct {
	users []store.ImportedUser
	names []string
}

// pipeline has read hand batches of importBatch users to w. When
// concurrent, read runs in a goroutine of its own: decoding and
// normalizing the next batch overlaps with the database's work on this
// one, and at most a few batches are held at once; a refused batch stops
// the reading.
func pipeline(ctx context.Context, q *store.Queries, r io.Reader, read readFunc, concurrent bool, sum *Summary, w *batchWriter) error {
	if !concurrent {
		var b batch
		err := read(ctx, q, r, func(u store.ImportedUser, record string) error {
			b.users, b.names = append(b.users, u), append(b.names, record)
			if len(b.users) < importBatch {
				return nil
			}
			err := w.flush(ctx, b)
			b = batch{}
			return err
		}, sum, w.progress)
		if err == nil && len(b.users) > 0 {
			err = w.flush(ctx, b)
		}
		sum.Users, sum.Addresses = w.users, w.addresses
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan batch, 2)
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		var b batch
		send := func() error {
			select {
			case batches <- b:
				b = batch{}
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err := read(ctx, nil, r, func(u store.ImportedUser, record string) error {
			b.users, b.names = append(b.users, u), append(b.names, record)
			if len(b.users) < importBatch {
				return nil
			}
			return send()
		}, sum, nil)
		if err == nil && len(b.users) > 0 {
			err = send()
		}
		readErr <- err
	}()
	var writeErr error
	for b := range batches {
		if writeErr == nil {
			if writeErr = w.flush(ctx, b); writeErr != nil {
				cancel() // the reader stops at its next batch
			}
		}
	}
	if err := <-readErr; writeErr == nil {
		writeErr = err
	}
	if writeErr == nil {
		sum.Users, sum.Addresses = w.users, w.addresses
	}
	return writeErr
}

// batchWriter inserts batches of users.
type batchWriter struct {
	q                *store.Queries
	now              time.Time
	progress         *progress
	users, addresses int64
}

// flush inserts b. When the database refuses it, it inserts b's users one
// by one to name the first one refused.
func (w *batchWriter) flush(ctx context.Context, b batch) error {
	err := w.q.Savepoint(ctx, func() error { return w.q.InsertImported(ctx, b.users, w.now) })
	if errors.Is(err, store.ErrEmailTaken) {
		err = nil
		for i := range b.users {
			one := b.users[i : i+1]
			if err := w.q.Savepoint(ctx, func() error { return w.q.InsertImported(ctx, one, w.now) }); err != nil {
				if errors.Is(err, store.ErrEmailTaken) {
					return w.conflict(ctx, one[0], b.names[i], err)
				}
				return err
			}
		}
	}
	if err != nil {
		return err
	}
	for _, u := range b.users {
		w.users++
		w.addresses += int64(len(u.Emails))
	}
	w.progress.at(w.users)
	return nil
}

// conflict names why the database refused u.
func (w *batchWriter) conflict(ctx context.Context, u store.ImportedUser, record string, cause error) error {
	taken, err := w.q.UserExists(ctx, u.ID)
	if err != nil {
		return err
	}
	if taken {
		return &RecordError{Code: "import_conflict", Record: record,
			Reason: fmt.Sprintf("user id %d is taken (by a user in the database or earlier in the file)", u.ID)}
	}
	for _, e := range u.Emails {
		if !e.Verified && !e.Primary {
			continue
		}
		holder, err := w.q.ClaimedBy(ctx, e.Key)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		return &RecordError{Code: "import_conflict", Record: record,
			Reason: fmt.Sprintf("address %s is verified or primary for user %d already", e.Email, holder)}
	}
	return &RecordError{Code: "import_conflict", Record: record, Reason: cause.Error()}
}

// maxAddresses bounds one user's addresses in a file, which bounds the
// memory one record can take. (USEREMAIL_MAX_EMAILS, for the API, is
// lower; an import keeps what the file has.)
const maxAddresses = 1000

// addressSet builds a user's addresses: normalized, one per comparison
// key (the flags of duplicates joined), one primary.
type addressSet struct {
	list []store.ImportedEmail
}

// add adds raw; primary is honoured only if the set has none yet.
func (s *addressSet) add(raw string, verified, primary bool) error {
	a, err := address.Normalize(raw)
	if err != nil {
		return fmt.Errorf("address %q: %w", raw, err)
	}
	if len(s.list) >= maxAddresses {
		return fmt.Errorf("more than %d addresses", maxAddresses)
	}
	hasPrimary := s.primary() >= 0
	for i := range s.list {
		if s.list[i].Key == a.Key {
			s.list[i].Verified = s.list[i].Verified || verified
			s.list[i].Primary = s.list[i].Primary || (primary && !hasPrimary)
			return nil
		}
	}
	s.list = append(s.list, store.ImportedEmail{Email: a.Email, Key: a.Key, Verified: verified, Primary: primary && !hasPrimary})
	return nil
}

func (s *addressSet) primary() int {
	for i, e := range s.list {
		if e.Primary {
			return i
		}
	}
	return -1
}

// checkHash returns the hash to store for a user's password hash as a file
// brings it and its scheme for the summary: Django's unusable passwords
// ("!…") and empty ones become none.
func checkHash(record, hash string) (string, string, error) {
	if hash == "" || strings.HasPrefix(hash, "!") {
		return "", "none", nil
	}
	scheme, err := password.Identify(hash)
	if err != nil {
		name, _, _ := strings.Cut(hash, "$")
		if len(name) > 20 {
			name = name[:20]
		}
		return "", "", invalid(record, "password hash of scheme %q is not one that can log in: %v", name, err)
	}
	return hash, scheme, nil
}

// checkLanguage returns the canonical form of a BCP 47 tag, DefaultLanguage
// for none.
func checkLanguage(record, tag string) (string, error) {
	if tag == "" {
		return store.DefaultLanguage, nil
	}
	t, err := language.Parse(tag)
	if err != nil || len(tag) > 35 {
		return "", invalid(record, "language %q is not a BCP 47 tag", tag)
	}
	return t.String(), nil
}
