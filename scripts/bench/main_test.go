package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The generated block is replaced and the prose around it kept, including
// prose that names the markers inline; a file with one marker is refused.
func TestWriteGenerated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "perf.md")
	doc := "# Perf\n\nThe block sits between `" + beginMarker + "` and its end.\n\n" +
		beginMarker + "\nold table\n" + endMarker + "\n\nafter\n"
	os.WriteFile(path, []byte(doc), 0o644)
	if err := writeGenerated(path, "new table"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := strings.Replace(doc, "old table", "new table", 1)
	if string(got) != want {
		t.Errorf("file after:\n%s\nwant:\n%s", got, want)
	}

	os.WriteFile(path, []byte("text\n"+beginMarker+"\nno end\n"), 0o644)
	if err := writeGenerated(path, "x"); err == nil {
		t.Error("a file with a begin marker and no end was rewritten")
	}
}

// -quick shortens only what was not set; bad concurrencies are refused.
func TestParseFlags(t *testing.T) {
	// Only checked for being set or existing: nothing is connected to.
	base := []string{"-database-url", "postgres://bench", "-redis-url", "redis://bench", "-tollgate", os.Args[0]}
	o, err := parseFlags(append(base, "-quick", "-duration", "7s", "-concurrency", "8, 32"))
	if err != nil {
		t.Fatal(err)
	}
	if o.duration != 7*time.Second || o.warmup != time.Second || o.holdDuration != 5*time.Second {
		t.Errorf("-quick with -duration 7s: duration %v, warm-up %v, hold %v", o.duration, o.warmup, o.holdDuration)
	}
	if len(o.concurrency) != 2 || o.concurrency[0] != 8 || o.concurrency[1] != 32 {
		t.Errorf("concurrency %v, want [8 32]", o.concurrency)
	}
	for _, bad := range [][]string{{"-concurrency", "0"}, {"-concurrency", "a,b"}, {"-duration", "0s"}} {
		if _, err := parseFlags(append(base, bad...)); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}
