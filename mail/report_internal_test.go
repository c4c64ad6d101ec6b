package mail

import (
	"fmt"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	d := &Dispatcher{backoffBase: 10 * time.Second, backoffMax: time.Hour}
	tests := []struct {
		attempt int
		ceiling time.Duration
	}{
		{1, 10 * time.Second},
		{2, 20 * time.Second},
		{4, 80 * time.Second},
		{12, time.Hour},
		{100, time.Hour},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.attempt), func(t *testing.T) {
			for range 200 {
				if b := d.backoff(tt.attempt); b < 0 || b > tt.ceiling {
					t.Fatalf("backoff(%d) = %v, want within [0, %v]", tt.attempt, b, tt.ceiling)
				}
			}
		})
	}
}
