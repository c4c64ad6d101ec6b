package pages_test

import (
	"testing"

	"github.com/useremail/useremail/locale"
	"github.com/useremail/useremail/pages"
)

// BenchmarkRender renders the account page, the largest, in German.
func BenchmarkRender(b *testing.B) {
	r, err := pages.New("")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Render("account", pages.Sample("account", locale.Default().Localizer("de"))); err != nil {
			b.Fatal(err)
		}
	}
}
