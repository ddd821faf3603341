// Package store holds Tollgate's domain types and every SQL statement that
// reads or writes them. The gateway, the admin app and the jobs all go
// through its named methods; nothing else talks to PostgreSQL.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	schema "tollgate/sql"
)

// Errors callers map to HTTP statuses.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// ValidationError names the field and the rule it breaks; the API returns
// its message as-is with status 400.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return e.Message }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// ConflictError explains why a write clashes with existing data (409).
type ConflictError struct{ Message string }

func (e *ConflictError) Error() string        { return e.Message }
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Store is the PostgreSQL store.
type Store struct {
	db     *sqlx.DB
	dsn    string
	sealer *Sealer
}

// Open connects to PostgreSQL and checks the connection.
func Open(ctx context.Context, dsn string, sealer *Sealer) (*Store, error) {
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	db.SetMaxOpenConns(25)
	db.SetMaxIdleConns(25)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres (check DATABASE_URL): %w", err)
	}
	return &Store{db: db, dsn: dsn, sealer: sealer}, nil
}

// Close closes the connection pool.
func (s *Store) Close() error { return s.db.Close() }

// DB exposes the pool for tests and health checks.
func (s *Store) DB() *sqlx.DB { return s.db }

// Ping reports whether PostgreSQL answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Migrate applies the embedded migrations up to the newest one.
func (s *Store) Migrate(ctx context.Context) error {
	// The session lock lets several processes start on a fresh database:
	// one migrates, the others wait and then find nothing to do.
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, s.db.DB, schema.Migrations, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// inTx runs fn in a transaction, committing when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Exclusive runs fn while holding a PostgreSQL advisory lock named name,
// so that only one process at a time runs it.
func (s *Store) Exclusive(ctx context.Context, name string, fn func() error) error {
	conn, err := s.db.Connx(ctx)
	if err != nil {
		return fmt.Errorf("lock %s: %w", name, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(hashtext($1))`, name); err != nil {
		return fmt.Errorf("lock %s: %w", name, err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext($1))`, name)
	return fn()
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// mapErr turns driver errors into the store's errors.
func mapErr(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch pqErr.Code {
		case "23505": // unique_violation
			return &ConflictError{Message: fmt.Sprintf("%s already exists", what)}
		case "23503": // foreign_key_violation
			return &ConflictError{Message: fmt.Sprintf("%s is referenced by other records: %s", what, strings.TrimPrefix(pqErr.Detail, "Key "))}
		case "23514": // check_violation
			return invalid(pqErr.Constraint, "%s breaks rule %s", what, pqErr.Constraint)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}
