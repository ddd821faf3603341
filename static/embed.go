// Package static holds the admin dashboard's browser assets: the
// stylesheet and script written for Tollgate (css/, js/) and the vendored
// third-party files (vendor/, see vendor/VERSIONS.txt).
//
// Serve them with the standard library, for example:
//
//	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static.FS)))
//
// Paths inside FS have no "static/" prefix: "css/app.css", "js/app.js",
// "vendor/htmx.min.js", "vendor/pico.min.css".
package static

import "embed"

// FS is every asset under static/, keyed by its path relative to static/.
//
//go:embed css js vendor favicon.svg
var FS embed.FS
