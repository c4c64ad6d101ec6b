package password

import (
	"bufio"
	"compress/gzip"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestCheckPolicy(t *testing.T) {
	long := strings.Repeat("ab", MaxLength/2)
	tests := []struct {
		name      string
		password  string
		addresses []string
		want      Weakness // "" for none
	}{
		{"seven characters", "xq7!vb2", nil, TooShort},
		{"seven characters of four bytes", strings.Repeat("𝄞", 7), nil, TooShort},
		{"eight characters of four bytes", strings.Repeat("𝄞", 8), nil, ""},
		{"eight characters", "xq7!vb2k", nil, ""},
		{"1024 characters", long, nil, ""},
		{"1025 characters", long + "c", nil, TooLong},
		{"common", "password123", nil, Common},
		{"common in capitals", "PassWord123", nil, Common},
		{"common with spaces around", "  password123 ", nil, Common},
		{"the address", "Alice.Liddell@Example.com", []string{"alice.liddell@example.com"}, LikeAddress},
		{"the local part", "ALICE.LIDDELL", []string{"alice.liddell@example.com"}, LikeAddress},
		{"a second address's local part", "wonderland7", []string{"alice@example.com", "Wonderland7@rabbit.example"}, LikeAddress},
		{"the domain is fine", "example.com", []string{"alice@example.com"}, ""},
		{"longer than the local part", "alice.liddell1", []string{"alice.liddell@example.com"}, ""},
		{"a passphrase", "correct horse battery staple", []string{"alice@example.com"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPolicy(tt.password, tt.addresses...)
			var we *WeakError
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("CheckPolicy = %v, want nil", err)
			case tt.want != "" && (!errors.As(err, &we) || we.Weakness != tt.want):
				t.Fatalf("CheckPolicy = %v, want weakness %s", err, tt.want)
			}
		})
	}
}

// TestCommonListIsDjangos checks every line of the embedded file, read
// again here, against IsCommon, and a few that are not on it.
func TestCommonListIsDjangos(t *testing.T) {
	f, err := os.Open("commonpasswords/common-passwords.txt.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	lines := 0
	for sc.Scan() {
		lines++
		if !IsCommon(sc.Text()) || !IsCommon(strings.ToUpper(sc.Text())) {
			t.Fatalf("line %d %q is not found", lines, sc.Text())
		}
	}
	if lines < 19000 || CommonCount() < 19000 {
		t.Fatalf("%d lines, %d distinct passwords: not Django's list", lines, CommonCount())
	}
	for _, pw := range []string{"", "correct horse battery staple", "xq7!vb2k-not-common"} {
		if IsCommon(pw) {
			t.Errorf("IsCommon(%q) = true", pw)
		}
	}
}

func BenchmarkCheckPolicy(b *testing.B) {
	CommonCount() // the list is read once, before the first check
	addresses := []string{"alice.liddell@example.com", "alice@work.example"}
	for _, pw := range []string{"password123", "correct horse battery staple", "zzzzzzzzzzzzz"} {
		b.Run(pw, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = CheckPolicy(pw, addresses...)
			}
		})
	}
}
