package main

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// cmdHealthcheck asks the server at USEREMAIL_ADDR whether it is ready, for
// container health checks in images without curl.
func cmdHealthcheck(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("healthcheck", "useremail healthcheck",
		"Exit 0 when the server at USEREMAIL_ADDR answers /readyz with 200 within 3 s, 1 otherwise\n"+
			"(for container health checks in images without curl).")
	if err := parseOnlyFlags(fs, args, e.Stdout); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(cmp.Or(e.Getenv("USEREMAIL_ADDR"), "127.0.0.1:8080"))
	if err != nil {
		return err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/readyz", nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: %s", res.Status)
	}
	fmt.Fprintln(e.Stdout, "ready")
	return nil
}
