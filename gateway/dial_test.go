package gateway

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// fullListener listens on loopback with a backlog of zero and never
// accepts, so once its queue is full further connects hang as they do on
// an unreachable host, without any traffic leaving the machine.
func fullListener(t *testing.T) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
	// Fill the accept queue.
	for range 4 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr
}

func TestConnectTimeoutFromTheDeployment(t *testing.T) {
	addr := fullListener(t)
	dial := dialer(&net.Dialer{Timeout: 10 * time.Second})
	ctx := context.WithValue(context.Background(), connectTimeoutKey{}, 150*time.Millisecond)
	began := time.Now()
	_, err := dial(ctx, "tcp", addr)
	took := time.Since(began)
	var te *timeoutError
	if !errors.As(err, &te) || te.what != "connect" || took > 3*time.Second {
		t.Fatalf("dial took %s, err %v; want a connect timeout after 150ms", took, err)
	}
	// Without a deployment timeout the dialer keeps its own default.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := dial(ctx, "tcp", addr); errors.As(err, &te) {
		t.Fatalf("plain dial reported a deployment timeout: %v", err)
	}
}
