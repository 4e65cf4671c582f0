package control

import (
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
)

// requireToken refuses requests without "Authorization: Bearer TOKEN".
func requireToken(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ferry"`)
			reply(w, 0, nil, api.Errorf(http.StatusUnauthorized, "missing or wrong bearer token: send the token of the executors' --token-file as \"Authorization: Bearer TOKEN\""))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ReadTokenFile reads the API token from file: its content without
// surrounding white space.
func ReadTokenFile(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("token file %s is empty: write a long random token into it", file)
	}
	return token, nil
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
