// Package sql holds the PostgreSQL schema as plain migration files, embedded
// in the binary so `tollgate migrate` needs nothing on disk.
package sql

import "embed"

// Migrations are the goose migration files, applied in name order.
//
//go:embed *.sql
var Migrations embed.FS
