// Package secret resolves secret references ({env: NAME} or {file: PATH})
// when a job starts. Errors name the reference, never the value, so a secret
// cannot leak through a log line or a status page.
package secret

import (
	"fmt"
	"os"
	"strings"

	"github.com/ferry-pipelines/ferry/schema"
)

// Resolve returns the secret's value. A file's trailing newline is dropped.
func Resolve(s schema.Secret) (string, error) {
	switch {
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			return "", fmt.Errorf("secret: environment variable %s is not set", s.Env)
		}
		return v, nil
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("secret: cannot read file %s: %v", s.File, unwrapPathError(err))
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return "", fmt.Errorf("secret: empty reference (want env or file)")
}

// Describe names the reference for messages: "env TRADING_DB_PASSWORD".
func Describe(s schema.Secret) string {
	if s.Env != "" {
		return "env " + s.Env
	}
	return "file " + s.File
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
