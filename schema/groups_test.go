package schema

import "testing"

func TestGroupPattern(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		match   []string
		miss    []string
	}{
		{"billing", []string{"billing"}, []string{"billing-eu", "xbilling"}},
		{"billing-*", []string{"billing-", "billing-eu", "billing-eu.v2"}, []string{"billing", "old-billing-eu"}},
		{"app.?", []string{"app.1", "app.x"}, []string{"app.", "app.12", "appx1"}},
		{"a+b(c)", []string{"a+b(c)"}, []string{"aab(c)", "a+bc"}},
		{"/^audit-[0-9]+$/", []string{"audit-1", "audit-42"}, []string{"audit-", "audit-x", "my-audit-1"}},
		{"/eu/", []string{"billing-eu", "eu"}, []string{"billing-us"}},
	} {
		re, err := GroupPattern(tc.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tc.pattern, err)
		}
		for _, name := range tc.match {
			if !re.MatchString(name) {
				t.Errorf("%s does not match %s", tc.pattern, name)
			}
		}
		for _, name := range tc.miss {
			if re.MatchString(name) {
				t.Errorf("%s matches %s", tc.pattern, name)
			}
		}
	}
	if _, err := GroupPattern("/[a-/"); err == nil || err.Error() != `"/[a-/" is not a valid regular expression: missing closing ]: `+"`[a-`" {
		t.Errorf("bad expression: %v", err)
	}
}
