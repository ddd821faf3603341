package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TOLLGATE_PPROF_ADDR serves Go's profiles on a listener of its own; the
// public ports do not.
func TestProfilerOnItsOwnLoopbackPort(t *testing.T) {
	addr := freeAddr(t)
	s := startStackWith(t, map[string]string{"TOLLGATE_PPROF_ADDR": addr})
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://" + addr + "/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile:") {
		t.Fatalf("profiler: %d %.200s", code, body)
	}
	for _, public := range []string{s.gateway, s.admin} {
		if code, _ := get(public + "/debug/pprof/"); code == 200 {
			t.Errorf("%s serves the profiler", public)
		}
	}
}
