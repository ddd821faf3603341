package store

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// Page asks for one page of a list, newest first.
type Page struct {
	Limit  int
	Cursor string
}

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return defaultPageSize
	case p.Limit > maxPageSize:
		return maxPageSize
	}
	return p.Limit
}

// cursorRow is a row that can be resumed from: its sort key.
type cursorRow interface {
	cursor() (time.Time, string)
}

func encodeCursor(ts time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(ts.UTC().Format(time.RFC3339Nano) + "|" + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", invalid("cursor", "cursor is not one this API returned")
	}
	tsPart, id, ok := strings.Cut(string(raw), "|")
	ts, err := time.Parse(time.RFC3339Nano, tsPart)
	if !ok || err != nil {
		return time.Time{}, "", invalid("cursor", "cursor is not one this API returned")
	}
	return ts, id, nil
}

// query collects WHERE conditions with numbered placeholders.
type query struct {
	conds []string
	args  []any
}

// add appends a condition; "?" in cond becomes the next placeholder.
func (q *query) add(cond string, arg any) {
	q.args = append(q.args, arg)
	q.conds = append(q.conds, strings.Replace(cond, "?", fmt.Sprintf("$%d", len(q.args)), 1))
}

func (q *query) where() string {
	if len(q.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(q.conds, " AND ")
}

// listPage runs from (a FROM clause or subquery, aliased as x) with the
// filters in q, newest first, and returns the page and the next cursor.
func listPage[T cursorRow](ctx context.Context, s *Store, selectFrom, tsCol, idCol string, q query, page Page) ([]T, string, error) {
	if page.Cursor != "" {
		ts, id, err := decodeCursor(page.Cursor)
		if err != nil {
			return nil, "", err
		}
		q.args = append(q.args, ts, id)
		n := len(q.args)
		q.conds = append(q.conds, fmt.Sprintf("(%s, %s::text) < ($%d, $%d)", tsCol, idCol, n-1, n))
	}
	limit := page.limit()
	sqlText := fmt.Sprintf("%s%s ORDER BY %s DESC, %s::text DESC LIMIT %d", selectFrom, q.where(), tsCol, idCol, limit+1)
	rows := []T{}
	if err := s.db.SelectContext(ctx, &rows, sqlText, q.args...); err != nil {
		return nil, "", err
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		next = encodeCursor(rows[limit-1].cursor())
	}
	return rows, next, nil
}

func (p Provider) cursor() (time.Time, string) { return p.CreatedAt, p.ID }
func (m Model) cursor() (time.Time, string)    { return m.CreatedAt, m.ID }
func (t Team) cursor() (time.Time, string)     { return t.CreatedAt, t.ID }
func (u User) cursor() (time.Time, string)     { return u.CreatedAt, u.ID }
func (k Key) cursor() (time.Time, string)      { return k.CreatedAt, k.ID }
func (b Budget) cursor() (time.Time, string)   { return b.CreatedAt, b.ID }
func (l SpendLog) cursor() (time.Time, string) { return l.CreatedAt, l.RequestID }
func (a AuditEntry) cursor() (time.Time, string) {
	return a.CreatedAt, fmt.Sprintf("%020d", a.ID)
}
