package ratelimit_test

import (
	"testing"

	"github.com/useremail/useremail/ratelimit"
)

func TestNetwork(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"192.0.2.7", "192.0.2.7/32"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"},
		{"127.0.0.1", "127.0.0.1/32"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::99", "2001:db8:1:2::/64"},
		{"2001:DB8:1:2:FFFF::1", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"::1", "::/64"},
		{"", ""},
		{"not an address", "not an address"},
	} {
		if got := ratelimit.Network(tc.ip); got != tc.want {
			t.Errorf("Network(%q) = %q, want %q", tc.ip, got, tc.want)
		}
	}
	// Two hosts of one IPv6 LAN are one client network; two IPv4 hosts are two.
	if ratelimit.Network("2001:db8:0:1::a") != ratelimit.Network("2001:db8:0:1:ffff::b") {
		t.Error("two addresses of one /64 are different networks")
	}
	if ratelimit.Network("2001:db8:0:1::a") == ratelimit.Network("2001:db8:0:2::a") {
		t.Error("two /64s are one network")
	}
	if ratelimit.Network("192.0.2.1") == ratelimit.Network("192.0.2.2") {
		t.Error("two IPv4 addresses are one network")
	}
}
