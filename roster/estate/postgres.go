package estate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"mailwave/internal/pgschema"
)

// Schema is created if missing, beside the roster store's tables. A
// mailbox's night and outcome are where it stands now; a night's mailboxes
// keep their outcome on that night (deferred ones too, though they are
// back in the pool).
const Schema = `
CREATE TABLE IF NOT EXISTS mailwave_estate_orgs (
	name text PRIMARY KEY,
	state text NOT NULL,
	reason text NOT NULL DEFAULT '',
	by_whom text NOT NULL DEFAULT '',
	since timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS mailwave_estate_mailboxes (
	key text PRIMARY KEY,
	address text NOT NULL,
	org text NOT NULL REFERENCES mailwave_estate_orgs (name),
	display_name text NOT NULL DEFAULT '',
	size_bytes bigint NOT NULL DEFAULT 0,
	leaver boolean NOT NULL DEFAULT false,
	night text NOT NULL DEFAULT '',
	outcome text NOT NULL DEFAULT '',
	deferrals integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS mailwave_estate_pool ON mailwave_estate_mailboxes (org) WHERE night = '' AND NOT leaver;
CREATE TABLE IF NOT EXISTS mailwave_estate_nights (
	name text PRIMARY KEY,
	seed bigint NOT NULL,
	chosen_at timestamptz NOT NULL,
	orgs text[] NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS mailwave_estate_night_mailboxes (
	night text NOT NULL REFERENCES mailwave_estate_nights (name),
	idx integer NOT NULL,
	key text NOT NULL REFERENCES mailwave_estate_mailboxes (key),
	outcome text NOT NULL DEFAULT '',
	PRIMARY KEY (night, idx),
	UNIQUE (night, key)
);
ALTER TABLE mailwave_estate_mailboxes ADD COLUMN IF NOT EXISTS reserved_for timestamptz;
ALTER TABLE mailwave_estate_nights ADD COLUMN IF NOT EXISTS date_from timestamptz;
ALTER TABLE mailwave_estate_nights ADD COLUMN IF NOT EXISTS date_until timestamptz;`

// estateLock is the transaction-level advisory lock every change to the
// estate holds ("mwestate"): Chooses, Records, imports and state changes
// take turns, so no two nights ever take one mailbox, and a night chosen
// is chosen once.
const estateLock = 0x6d77657374617465

// Postgres is the estate in PostgreSQL, for a fleet.
type Postgres struct{ pool *pgxpool.Pool }

// OpenPostgres connects and creates the tables if missing.
func OpenPostgres(ctx context.Context, url string) (*Postgres, error) {
	pool, err := pgschema.Open(ctx, url, Schema, "estate")
	if err != nil {
		return nil, err
	}
	return &Postgres{pool: pool}, nil
}

// Close closes the pool.
func (p *Postgres) Close() { p.pool.Close() }

// change runs fn in a transaction holding the estate's lock.
func (p *Postgres) change(ctx context.Context, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(estateLock)); err != nil {
			return err
		}
		return fn(tx)
	})
	return wrap(err)
}

// wrap names the store in a database's error, and leaves the estate's own.
func wrap(err error) error {
	var r refused
	if err == nil || errors.As(err, &r) || errors.Is(err, ErrUnknownNight) || errors.Is(err, ErrUnknownOrg) ||
		errors.Is(err, ErrUnknownMailbox) {
		return err
	}
	return fmt.Errorf("estate: %w", err)
}

// Import adds and updates mailboxes and marks leavers (see Store): the
// import copied into a temporary table, then compared with the estate in
// a few statements.
func (p *Postgres) Import(ctx context.Context, mailboxes []Mailbox, at time.Time) (ImportResult, error) {
	var res ImportResult
	if err := checkImport(mailboxes); err != nil {
		return res, err
	}
	err := p.change(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `CREATE TEMP TABLE mailwave_estate_import (
			key text PRIMARY KEY, address text NOT NULL, org text NOT NULL,
			display_name text NOT NULL, size_bytes bigint NOT NULL) ON COMMIT DROP`)
		if err != nil {
			return err
		}
		rows := make([][]any, len(mailboxes))
		for i, m := range mailboxes {
			rows[i] = []any{m.Key, m.Address, m.Org, m.DisplayName, m.SizeBytes}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"mailwave_estate_import"},
			[]string{"key", "address", "org", "display_name", "size_bytes"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		q, err := tx.Query(ctx, `INSERT INTO mailwave_estate_orgs (name, state, reason, by_whom, since)
			SELECT DISTINCT org, $1::text, $2::text, $3::text, $4::timestamptz FROM mailwave_estate_import
			WHERE org NOT IN (SELECT name FROM mailwave_estate_orgs) RETURNING name`,
			string(Pilot), newOrgReason, importer, stamp(at))
		if err != nil {
			return err
		}
		if res.NewOrgs, err = pgx.CollectRows(q, pgx.RowTo[string]); err != nil {
			return err
		}
		if len(res.NewOrgs) == 0 {
			res.NewOrgs = nil
		}
		slices.Sort(res.NewOrgs)
		tag, err := tx.Exec(ctx, `UPDATE mailwave_estate_mailboxes m SET leaver = false,
			address = i.address, org = i.org, display_name = i.display_name,
			size_bytes = CASE WHEN i.size_bytes <> 0 THEN i.size_bytes ELSE m.size_bytes END
			FROM mailwave_estate_import i WHERE m.key = i.key AND m.leaver`)
		if err != nil {
			return err
		}
		res.Returned = int(tag.RowsAffected())
		tag, err = tx.Exec(ctx, `UPDATE mailwave_estate_mailboxes m SET
			address = i.address, org = i.org, display_name = i.display_name,
			size_bytes = CASE WHEN i.size_bytes <> 0 THEN i.size_bytes ELSE m.size_bytes END
			FROM mailwave_estate_import i WHERE m.key = i.key AND NOT m.leaver
			AND (m.address <> i.address OR m.org <> i.org OR m.display_name <> i.display_name
			     OR (i.size_bytes <> 0 AND i.size_bytes <> m.size_bytes))`)
		if err != nil {
			return err
		}
		res.Updated = int(tag.RowsAffected())
		tag, err = tx.Exec(ctx, `UPDATE mailwave_estate_mailboxes m SET leaver = true
			WHERE NOT m.leaver AND NOT EXISTS (SELECT 1 FROM mailwave_estate_import i WHERE i.key = m.key)`)
		if err != nil {
			return err
		}
		res.Left = int(tag.RowsAffected())
		tag, err = tx.Exec(ctx, `INSERT INTO mailwave_estate_mailboxes (key, address, org, display_name, size_bytes)
			SELECT key, address, org, display_name, size_bytes FROM mailwave_estate_import i
			WHERE NOT EXISTS (SELECT 1 FROM mailwave_estate_mailboxes m WHERE m.key = i.key)`)
		if err != nil {
			return err
		}
		res.Added = int(tag.RowsAffected())
		res.Unchanged = len(mailboxes) - res.Added - res.Updated - res.Returned
		return nil
	})
	if err != nil {
		return ImportResult{}, err
	}
	return res, nil
}

// Orgs lists the organisations by name.
func (p *Postgres) Orgs(ctx context.Context) ([]Org, error) {
	rows, err := p.pool.Query(ctx, `SELECT name, state, reason, by_whom, since FROM mailwave_estate_orgs ORDER BY name COLLATE "C"`)
	if err != nil {
		return nil, wrap(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Org, error) {
		var o Org
		err := r.Scan(&o.Name, &o.State, &o.Reason, &o.By, &o.Since)
		o.Since = o.Since.UTC()
		return o, err
	})
	return out, wrap(err)
}

// SetOrg changes an organisation's state.
func (p *Postgres) SetOrg(ctx context.Context, o Org) error {
	if err := checkOrg(o); err != nil {
		return err
	}
	return p.change(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE mailwave_estate_orgs SET state = $2, reason = $3, by_whom = $4, since = $5 WHERE name = $1`,
			o.Name, string(o.State), o.Reason, o.By, stamp(o.Since))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("organisation %.80q: %w", o.Name, ErrUnknownOrg)
		}
		return nil
	})
}

// querier is a transaction or the pool.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// readNight reads a night and its mailboxes; ErrUnknownNight if none.
func readNight(ctx context.Context, q querier, name string) (Night, error) {
	n := Night{Name: name}
	err := q.QueryRow(ctx, `SELECT seed, chosen_at, orgs FROM mailwave_estate_nights WHERE name = $1`, name).Scan(&n.Seed, &n.ChosenAt, &n.Orgs)
	if errors.Is(err, pgx.ErrNoRows) {
		return n, fmt.Errorf("night %s: %w", name, ErrUnknownNight)
	}
	if err != nil {
		return n, err
	}
	n.ChosenAt = n.ChosenAt.UTC()
	if len(n.Orgs) == 0 {
		n.Orgs = nil
	}
	rows, err := q.Query(ctx, `SELECT m.key, m.address, m.org, m.display_name, m.size_bytes, m.leaver, x.outcome, m.reserved_for
		FROM mailwave_estate_night_mailboxes x JOIN mailwave_estate_mailboxes m ON m.key = x.key
		WHERE x.night = $1 ORDER BY x.idx`, name)
	if err != nil {
		return n, err
	}
	n.Mailboxes, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Mailbox, error) {
		m := Mailbox{Night: name}
		var reserved *time.Time
		err := r.Scan(&m.Key, &m.Address, &m.Org, &m.DisplayName, &m.SizeBytes, &m.Left, &m.Outcome, &reserved)
		if reserved != nil {
			m.ReservedFor = reserved.UTC()
		}
		return m, err
	})
	if len(n.Mailboxes) == 0 {
		n.Mailboxes = nil
	}
	return n, err
}

// Choose samples a night's mailboxes (see Store), in one transaction.
func (p *Postgres) Choose(ctx context.Context, c Choice, at time.Time) (Night, error) {
	if err := checkChoice(c); err != nil {
		return Night{}, err
	}
	var night Night
	err := p.change(ctx, func(tx pgx.Tx) error {
		n, err := readNight(ctx, tx, c.Night)
		if err == nil {
			night = n
			return nil
		} else if !errors.Is(err, ErrUnknownNight) {
			return err
		}
		orgs := pilotOrgs(c.Orgs)
		if orgs == nil {
			orgs = []string{}
		}
		q, err := tx.Query(ctx, `SELECT name FROM mailwave_estate_orgs WHERE name = ANY($1)`, orgs)
		if err != nil {
			return err
		}
		known, err := pgx.CollectRows(q, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, o := range orgs {
			if !slices.Contains(known, o) {
				return fmt.Errorf("night %s: organisation %.80q: %w", c.Night, o, ErrUnknownOrg)
			}
		}
		// The range as the SQL sees it: none (a pilot) is an empty one.
		from, until := c.ReservedFrom, c.ReservedUntil
		if from.IsZero() {
			from, until = time.Unix(0, 0), time.Unix(0, 0)
		}
		q, err = tx.Query(ctx, `SELECT m.key FROM mailwave_estate_mailboxes m
			WHERE m.night = '' AND NOT m.leaver AND m.reserved_for >= $1 AND m.reserved_for < $2
			ORDER BY m.key COLLATE "C"`, from, until)
		if err != nil {
			return err
		}
		first, err := pgx.CollectRows(q, pgx.RowTo[string])
		if err != nil {
			return err
		}
		q, err = tx.Query(ctx, `SELECT m.key FROM mailwave_estate_mailboxes m JOIN mailwave_estate_orgs o ON o.name = m.org
			WHERE m.night = '' AND NOT m.leaver
			AND (m.reserved_for IS NULL OR ($3 AND m.reserved_for < $4))
			AND CASE WHEN cardinality($1::text[]) = 0 THEN o.state = $2 ELSE m.org = ANY($1) END`,
			orgs, string(Ready), !c.ReservedFrom.IsZero(), from)
		if err != nil {
			return err
		}
		pool, err := pgx.CollectRows(q, pgx.RowTo[string])
		if err != nil {
			return err
		}
		keys := slices.Concat(first, sample(pool, max(c.N-len(first), 0), c.Seed))
		if _, err := tx.Exec(ctx, `INSERT INTO mailwave_estate_nights (name, seed, chosen_at, orgs, date_from, date_until) VALUES ($1, $2, $3, $4, $5, $6)`,
			c.Night, c.Seed, stamp(at), orgs, nullTime(c.ReservedFrom), nullTime(c.ReservedUntil)); err != nil {
			return err
		}
		rows := make([][]any, len(keys))
		for i, k := range keys {
			rows[i] = []any{c.Night, i, k}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"mailwave_estate_night_mailboxes"},
			[]string{"night", "idx", "key"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE mailwave_estate_mailboxes SET night = $1, outcome = '', reserved_for = NULL
			WHERE key = ANY($2) AND night = ''`, c.Night, keys)
		if err != nil {
			return err
		}
		if int(tag.RowsAffected()) != len(keys) {
			return fmt.Errorf("night %s: %d of the %d chosen were taken meanwhile", c.Night, len(keys)-int(tag.RowsAffected()), len(keys))
		}
		night, err = readNight(ctx, tx, c.Night)
		return err
	})
	if err != nil {
		return Night{}, err
	}
	return night, nil
}

// Night reads a chosen night.
func (p *Postgres) Night(ctx context.Context, name string) (Night, error) {
	if err := checkNight(name); err != nil {
		return Night{}, err
	}
	var n Night
	err := pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) (err error) {
		n, err = readNight(ctx, tx, name)
		return err
	})
	if err != nil {
		return Night{}, wrap(err)
	}
	return n, nil
}

// Nights lists the chosen nights with their counts.
func (p *Postgres) Nights(ctx context.Context) ([]NightCounts, error) {
	rows, err := p.pool.Query(ctx, `SELECT n.name, n.seed, n.chosen_at, n.orgs, count(x.key),
		count(x.key) FILTER (WHERE x.outcome = $1), count(x.key) FILTER (WHERE x.outcome = $2),
		count(x.key) FILTER (WHERE x.outcome = $3), count(x.key) FILTER (WHERE x.outcome = '')
		FROM mailwave_estate_nights n LEFT JOIN mailwave_estate_night_mailboxes x ON x.night = n.name
		GROUP BY n.name ORDER BY n.chosen_at, n.name COLLATE "C"`,
		string(Migrated), string(NeedsSupport), string(Deferred))
	if err != nil {
		return nil, wrap(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (NightCounts, error) {
		var n NightCounts
		err := r.Scan(&n.Name, &n.Seed, &n.ChosenAt, &n.Orgs, &n.Chosen, &n.Migrated, &n.NeedsSupport, &n.Deferred, &n.InFlight)
		n.ChosenAt = n.ChosenAt.UTC()
		if len(n.Orgs) == 0 {
			n.Orgs = nil
		}
		return n, err
	})
	return out, wrap(err)
}

// Record sets the outcomes of a night's mailboxes (see Store), in one
// transaction.
func (p *Postgres) Record(ctx context.Context, night string, outcomes map[string]Outcome) error {
	if err := checkNight(night); err != nil {
		return err
	}
	keys := make([]string, 0, len(outcomes))
	for k := range outcomes {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the first error is the same every time
	return p.change(ctx, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM mailwave_estate_nights WHERE name = $1`, night).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("night %s: %w", night, ErrUnknownNight)
		}
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT key, outcome FROM mailwave_estate_night_mailboxes WHERE night = $1 AND key = ANY($2)`, night, keys)
		if err != nil {
			return err
		}
		was := make(map[string]Outcome, len(keys))
		var k string
		var o Outcome
		if _, err := pgx.ForEachRow(rows, []any{&k, &o}, func() error { was[k] = o; return nil }); err != nil {
			return err
		}
		var changedKeys, changedTo []string
		for _, k := range keys {
			old, ok := was[k]
			if !ok {
				return refuse("night %s: mailbox %.80q was not chosen for it", night, k)
			}
			if err := checkRecord(night, k, old, outcomes[k]); err != nil {
				return err
			}
			if old != outcomes[k] {
				changedKeys, changedTo = append(changedKeys, k), append(changedTo, string(outcomes[k]))
			}
		}
		if len(changedKeys) == 0 {
			return nil
		}
		for _, sql := range []string{
			`UPDATE mailwave_estate_night_mailboxes x SET outcome = u.outcome
			 FROM unnest($2::text[], $3::text[]) AS u(key, outcome) WHERE x.night = $1 AND x.key = u.key`,
			`UPDATE mailwave_estate_mailboxes m SET outcome = u.outcome
			 FROM unnest($2::text[], $3::text[]) AS u(key, outcome)
			 WHERE m.key = u.key AND m.night = $1 AND u.outcome <> '` + string(Deferred) + `'`,
			`UPDATE mailwave_estate_mailboxes m SET night = '', outcome = '', deferrals = m.deferrals + 1
			 FROM unnest($2::text[], $3::text[]) AS u(key, outcome)
			 WHERE m.key = u.key AND m.night = $1 AND u.outcome = '` + string(Deferred) + `'`,
		} {
			if _, err := tx.Exec(ctx, sql, night, changedKeys, changedTo); err != nil {
				return err
			}
		}
		return nil
	})
}

// Reserve keeps a mailbox for a later night (see Store).
func (p *Postgres) Reserve(ctx context.Context, key string, at time.Time) error {
	if key == "" || at.IsZero() {
		return refuse("a reservation needs a mailbox's key and a time")
	}
	return p.change(ctx, func(tx pgx.Tx) error {
		var left bool
		var night, outcome string
		err := tx.QueryRow(ctx, `SELECT leaver, night, outcome FROM mailwave_estate_mailboxes WHERE key = $1`, key).Scan(&left, &night, &outcome)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("mailbox %.80q: %w", key, ErrUnknownMailbox)
		}
		if err != nil {
			return err
		}
		if err := checkReserve(key, left, Outcome(outcome)); err != nil {
			return err
		}
		var chosen string
		err = tx.QueryRow(ctx, `SELECT name FROM mailwave_estate_nights WHERE date_from <= $1 AND $1 < date_until ORDER BY name LIMIT 1`, stamp(at)).Scan(&chosen)
		if err == nil {
			return nightChosen(key, at, chosen)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if night != "" && outcome == "" {
			// Chosen for a night and not ended there: it leaves that night
			// now (deferred), so that the night of its new date can take
			// it, whenever the old one's outcomes are written.
			for _, sql := range []string{
				`UPDATE mailwave_estate_night_mailboxes SET outcome = '` + string(Deferred) + `' WHERE night = $1 AND key = $2`,
				`UPDATE mailwave_estate_mailboxes SET night = '', outcome = '', deferrals = deferrals + 1 WHERE key = $2 AND night = $1`,
			} {
				if _, err := tx.Exec(ctx, sql, night, key); err != nil {
					return err
				}
			}
		}
		_, err = tx.Exec(ctx, `UPDATE mailwave_estate_mailboxes SET reserved_for = $2 WHERE key = $1`, key, stamp(at))
		return err
	})
}

// Counts lists every organisation's progress.
func (p *Postgres) Counts(ctx context.Context) ([]OrgCounts, error) {
	rows, err := p.pool.Query(ctx, `SELECT o.name, o.state,
		count(m.key) FILTER (WHERE NOT m.leaver),
		count(m.key) FILTER (WHERE m.night <> '' AND m.outcome = $1),
		count(m.key) FILTER (WHERE m.night <> '' AND m.outcome = $2),
		count(m.key) FILTER (WHERE m.night <> '' AND m.outcome = ''),
		count(m.key) FILTER (WHERE m.night = '' AND NOT m.leaver),
		coalesce(sum(m.deferrals), 0)
		FROM mailwave_estate_orgs o LEFT JOIN mailwave_estate_mailboxes m ON m.org = o.name
		GROUP BY o.name, o.state ORDER BY o.name COLLATE "C"`, string(Migrated), string(NeedsSupport))
	if err != nil {
		return nil, wrap(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OrgCounts, error) {
		var c OrgCounts
		err := r.Scan(&c.Org, &c.State, &c.Total, &c.Migrated, &c.NeedsSupport, &c.Chosen, &c.Remaining, &c.Deferred)
		return c, err
	})
	return out, wrap(err)
}

// nullTime is a time for a nullable column: NULL when zero.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return stamp(t)
}
