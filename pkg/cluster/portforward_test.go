package cluster

import (
	"errors"
	"testing"
	"time"
)

// LokiConn.Close is public: a second Close must return, with the first one's answer.
func TestForwardCloseTwice(t *testing.T) {
	f := &Forward{stop: make(chan struct{}), done: make(chan error, 1)}
	lost := errors.New("lost connection to pod")
	go func() { <-f.stop; f.done <- lost }()
	closed := make(chan error, 2)
	go func() {
		closed <- f.Close()
		closed <- f.Close()
	}()
	for i := range 2 {
		select {
		case err := <-closed:
			if !errors.Is(err, lost) {
				t.Errorf("Close %d: %v, want the forwarder's %v", i+1, err, lost)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Close %d blocks", i+1)
		}
	}
}
