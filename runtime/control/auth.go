package control

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
)

// Tokens maps each bearer token of the control API to the owners it may
// write as: owner names, or prefixes ending in "*" ("cue:*"); "*" alone
// is an admin's, who writes as any owner and may transfer objects.
type Tokens map[string][]string

// ReadTokens reads a token file: a line per token, the token then the
// owners it may write as, separated by white space; a token alone is an
// admin's (so a file holding one token is as before owners were bound).
// Blank lines and lines starting with # are skipped.
func ReadTokens(file string) (Tokens, error) {
	lines, err := tokenLines(file)
	if err != nil {
		return nil, err
	}
	ts := Tokens{}
	for _, l := range lines {
		if _, dup := ts[l.fields[0]]; dup {
			return nil, fmt.Errorf("%s:%d: the token is on an earlier line too", file, l.n)
		}
		owners := l.fields[1:]
		if len(owners) == 0 {
			owners = []string{"*"}
		}
		ts[l.fields[0]] = owners
	}
	return ts, nil
}

// ReadTokenFile reads the token a client sends: the first of a token file.
func ReadTokenFile(file string) (string, error) {
	lines, err := tokenLines(file)
	if err != nil {
		return "", err
	}
	return lines[0].fields[0], nil
}

type tokenLine struct {
	n      int // line number
	fields []string
}

// tokenLines are a token file's lines that hold a token.
func tokenLines(file string) ([]tokenLine, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	var out []tokenLine
	for i, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
			out = append(out, tokenLine{i + 1, f})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("token file %s is empty: write a long random token into it", file)
	}
	return out, nil
}

// grant is what a request's token allows: the owners it may write as.
type grant []string

type grantKey struct{}

// grantOf is the request's grant; ok is false when the API has no tokens,
// and anyone who reaches it (on a loopback address) is an admin.
func grantOf(ctx context.Context) (g grant, ok bool) {
	g, ok = ctx.Value(grantKey{}).(grant)
	return g, ok
}

// allows reports whether the grant may write as owner.
func (g grant) allows(owner string) bool {
	for _, p := range g {
		if p == owner || strings.HasSuffix(p, "*") && strings.HasPrefix(owner, strings.TrimSuffix(p, "*")) {
			return true
		}
	}
	return false
}

// admin reports whether the grant is an admin's: it may transfer objects.
func (g grant) admin() bool { return slices.Contains(g, "*") }

// requireToken refuses requests without "Authorization: Bearer TOKEN" of
// one of tokens, and hands the token's grant on with the request.
func requireToken(tokens Tokens, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		var g grant
		for token, owners := range tokens {
			if subtle.ConstantTimeCompare(got, []byte("Bearer "+token)) == 1 {
				g = owners
			}
		}
		if g == nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ferry"`)
			reply(w, 0, nil, api.Errorf(http.StatusUnauthorized, "missing or wrong bearer token: send the token of the executors' --token-file as \"Authorization: Bearer TOKEN\""))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), grantKey{}, g)))
	})
}

// CheckExposure refuses to serve the control API on addr without a token
// unless addr is a loopback address: the API changes what runs.
func CheckExposure(addr string, hasToken bool) error {
	if hasToken {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--http %s: %v", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--http %s is not a loopback address and no --token-file is given: anyone who reaches it could change what runs; pass --token-file FILE, or listen on 127.0.0.1", addr)
}
