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
	var read func(context.Context, io.Reader, func(store.ImportedUser, string) error, *Summary) error
	switch opts.Format {
	case "", FormatUseremail:
		read = readUseremail
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
		w := &batchWriter{q: q, now: opts.Now(), sum: &sum, progress: p, ctx: ctx}
		if err := read(ctx, r, w.add, &sum); err != nil {
			return err
		}
		if err := w.flush(ctx); err != nil {
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

// batchWriter collects users and inserts them a batch at a time.
type batchWriter struct {
	q        *store.Queries
	now      time.Time
	sum      *Summary
	progress *progress
	batch    []store.ImportedUser
	names    []string
	ctx      context.Context
}

func (w *batchWriter) add(u store.ImportedUser, record string) error {
	w.batch = append(w.batch, u)
	w.names = append(w.names, record)
	if len(w.batch) >= importBatch {
		return w.flush(w.ctx)
	}
	return nil
}

// flush inserts the batch. When the database refuses it, it inserts the
// batch's users one by one to name the first one refused.
func (w *batchWriter) flush(ctx context.Context) error {
	if len(w.batch) == 0 {
		return nil
	}
	err := w.q.Savepoint(ctx, func() error { return w.q.InsertImported(ctx, w.batch, w.now) })
	if errors.Is(err, store.ErrEmailTaken) {
		err = nil
		for i := range w.batch {
			one := w.batch[i : i+1]
			if err := w.q.Savepoint(ctx, func() error { return w.q.InsertImported(ctx, one, w.now) }); err != nil {
				if errors.Is(err, store.ErrEmailTaken) {
					return w.conflict(ctx, one[0], w.names[i], err)
				}
				return err
			}
		}
	}
	if err != nil {
		return err
	}
	for _, u := range w.batch {
		w.sum.Users++
		w.sum.Addresses += int64(len(u.Emails))
	}
	w.batch, w.names = w.batch[:0], w.names[:0]
	w.progress.at(w.sum.Users)
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
