package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ferry-pipelines/ferry/runtime/control"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/schema"
)

// startHome starts the control API's service for `ferry run --home`: the
// definitions stored in the home datacenter become the plan, and the API
// that changes them is mounted on --http.
func startHome(ctx context.Context, args []string, f runFlags, logger *slog.Logger) (*control.Service, map[string]http.Handler, error) {
	if len(args) > 0 || f.planFile != "" || f.watch {
		return nil, nil, fmt.Errorf("--home runs the definitions stored in the home datacenter, not DIR, --plan or --watch: push a directory there with `ferry apply DIR --http ADDR`")
	}
	name, dc, err := parseHome(f.home)
	if err != nil {
		return nil, nil, err
	}
	var tokens control.Tokens
	if f.tokenFile != "" {
		if tokens, err = control.ReadTokens(f.tokenFile); err != nil {
			return nil, nil, err
		}
	}
	if f.httpAddr != "" {
		if err := control.CheckExposure(f.httpAddr, tokens != nil); err != nil {
			return nil, nil, err
		}
	}
	opts, err := kafkaconn.Options(dc)
	if err != nil {
		return nil, nil, fmt.Errorf("--home %s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	svc, err := control.NewService(ctx, opts, control.WithLogger(logger.With("home", name)), control.WithTokens(tokens))
	if err != nil {
		return nil, nil, fmt.Errorf("--home %s: %w", name, err)
	}
	return svc, map[string]http.Handler{"/v1/": svc.Handler()}, nil
}

// parseHome reads --home NAME=HOST:PORT[,HOST:PORT...], or NAME=@FILE
// where FILE holds the datacenter's kafka settings as JSON, in the shape of
// the definitions' kafka block (brokers, tls, sasl with its password as a
// secret reference), for a home datacenter that requires TLS or SASL.
func parseHome(s string) (string, schema.Datacenter, error) {
	name, brokers, ok := strings.Cut(s, "=")
	var dc schema.Datacenter
	if file, isFile := strings.CutPrefix(brokers, "@"); ok && isFile && name != "" {
		return name, dc, readHomeKafka(name, file, &dc.Kafka)
	}
	for _, b := range strings.Split(brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			dc.Kafka.Brokers = append(dc.Kafka.Brokers, b)
		}
	}
	if !ok || name == "" || len(dc.Kafka.Brokers) == 0 {
		return "", dc, fmt.Errorf("--home %q: want NAME=HOST:PORT[,HOST:PORT...], such as dc1=127.0.0.1:19092, or NAME=@FILE with the kafka settings as JSON", s)
	}
	return name, dc, nil
}

// readHomeKafka reads --home NAME=@FILE's settings.
func readHomeKafka(name, file string, k *schema.Kafka) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("--home %s: %w", name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(k); err != nil {
		return fmt.Errorf(`--home %s: %s is not kafka settings as JSON ({"brokers": [...], "tls": {...}, "sasl": {...}}): %v`, name, file, err)
	}
	if len(k.Brokers) == 0 {
		return fmt.Errorf("--home %s: %s lists no brokers", name, file)
	}
	return nil
}
