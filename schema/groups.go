package schema

import (
	"fmt"
	"regexp"
	"strings"
)

// GroupPattern compiles a pattern of groups: a Go regular expression
// between slashes, matching anywhere in a name unless anchored, or else a
// glob that matches whole names, where * is any run of characters and ?
// one character.
func GroupPattern(p string) (*regexp.Regexp, error) {
	if len(p) >= 2 && strings.HasPrefix(p, "/") && strings.HasSuffix(p, "/") {
		re, err := regexp.Compile(p[1 : len(p)-1])
		if err != nil {
			return nil, fmt.Errorf("%q is not a valid regular expression: %s", p, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		return re, nil
	}
	var b strings.Builder
	b.WriteString("^")
	for _, r := range p {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String()), nil
}
