package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/spf13/cobra"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/cdc"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/mirror"
	"github.com/ferry-pipelines/ferry/runtime/offsets"
	"github.com/ferry-pipelines/ferry/runtime/sink"
	"github.com/ferry-pipelines/ferry/runtime/statusapi"
)

// runFlags are `ferry run`'s flags.
type runFlags struct {
	planFile string
	shard    string
	httpAddr string
	instance string
	watch    bool
	logJSON  bool
	logLevel string
	// home and tokenFile run the definitions stored behind the control API
	// (home.go).
	home      string
	tokenFile string
	// tlsCert and tlsKey serve --http over TLS.
	tlsCert, tlsKey string
}

func runCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [DIR | --plan FILE]",
		Short: "Run the plan's jobs (of one shard with --shard) until interrupted",
		Long: `Run is the executor: it provisions topics, runs the plan's jobs (those of
--shard only, when given) and serves the HTTP API on --http. The plan is
compiled from DIR (default: the working directory) or read from --plan FILE.
On SIGHUP, and with --watch whenever a .cue file of DIR changes, it compiles
again and applies only the difference: new jobs start, removed ones stop,
changed ones restart, untouched ones keep running. An invalid change is
reported and the running plan is kept. SIGINT and SIGTERM stop every job
cleanly.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd.Context(), args, f)
		},
	}
	cmd.Flags().StringVar(&f.planFile, "plan", "", "run the plan `FILE` instead of compiling DIR")
	cmd.Flags().StringVar(&f.shard, "shard", "", "run only the jobs of shard `NAME` (default: all jobs)")
	cmd.Flags().StringVar(&f.httpAddr, "http", "", "serve /healthz, /metrics and /v1/jobs on `ADDR` (host:port)")
	cmd.Flags().StringVar(&f.instance, "instance", os.Getenv("FERRY_INSTANCE"), "a stable `NAME` for this process across restarts (a pod name), for static group membership")
	cmd.Flags().BoolVar(&f.watch, "watch", false, "recompile and apply when a .cue file of DIR changes")
	cmd.Flags().BoolVar(&f.logJSON, "log-json", false, "log JSON lines instead of text")
	cmd.Flags().StringVar(&f.logLevel, "log-level", "info", "log `LEVEL`: debug, info, warn or error")
	cmd.Flags().StringVar(&f.home, "home", "", "run the definitions stored in datacenter `NAME=BROKERS` (ferry.definitions) and serve the control API on --http")
	cmd.Flags().StringVar(&f.tokenFile, "token-file", "", "require a bearer token of `FILE` on the control API, each bound to the owners it may write as (docs/control-api.md; without one, --http must be a loopback address)")
	cmd.Flags().StringVar(&f.tlsCert, "tls-cert", "", "serve --http over TLS with the certificate (chain) in PEM `FILE`; needs --tls-key")
	cmd.Flags().StringVar(&f.tlsKey, "tls-key", "", "the private key in PEM `FILE` of --tls-cert")
	return cmd
}

// kinds are the job kinds this ferry runs, for one executor that logs to
// logger.
func kinds(logger *slog.Logger) []executor.Option {
	return []executor.Option{
		executor.WithLogger(logger),
		executor.WithKind(plan.KindMirror, mirror.NewKind(mirror.WithLogger(logger))),
		executor.WithKind(plan.KindCDC, executor.Exclusive(cdc.New)),
		executor.WithKind(plan.KindOffsets, executor.Exclusive(offsets.NewSync)),
		executor.WithKind(plan.KindSink, sink.NewKind(sink.WithLogger(logger))),
	}
}

func run(ctx context.Context, args []string, f runFlags) error {
	dir := dirArg(args)
	logger, err := newLogger(f.logJSON, f.logLevel)
	if err != nil {
		return exit(1, err)
	}
	tlsConf, err := serverTLS(f)
	if err != nil {
		return exit(1, err)
	}
	load := func(prev *plan.Plan) (*plan.Plan, error) {
		if f.planFile != "" {
			return readPlan(f.planFile)
		}
		var opts []compiler.Option
		if prev != nil {
			opts = append(opts, compiler.WithPrevious(prev))
		}
		p, _, err := compiler.CompileDir(dir, opts...)
		return p, err
	}
	var plans <-chan *plan.Plan // changes to the stored definitions, with --home
	var extra map[string]http.Handler
	if f.home != "" {
		home, handlers, err := startHome(ctx, args, f, logger)
		if err != nil {
			return exit(1, err)
		}
		defer home.Close()
		plans, extra = home.Plans(), handlers
		load = func(*plan.Plan) (*plan.Plan, error) { return home.Plan() }
		select { // the first plan, which load returns
		case <-plans:
		default:
		}
	}
	p, err := load(nil)
	if err != nil {
		return exit(1, err)
	}
	if f.shard != "" && f.home == "" {
		if _, ok := p.Shards[f.shard]; !ok {
			return exit(1, fmt.Errorf("shard %q is not in the plan (shards: %s)", f.shard, shardNames(p)))
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := append(kinds(logger), executor.WithShard(f.shard), executor.WithInstance(f.instance))
	ex := executor.New(opts...)
	go showLoads(ctx, ex.Registry())
	defer ex.Stop()

	if f.httpAddr != "" {
		srv, err := serve(f.httpAddr, tlsConf, statusapi.Handler(ex.Registry(), extra), logger)
		if err != nil {
			return exit(1, err)
		}
		defer srv.Close()
	}
	printJobs(os.Stdout, p, f.shard)
	ex.Apply(ctx, p)
	defer report(ctx, ex, logger)()

	reload := make(chan os.Signal, 1)
	signal.Notify(reload, syscall.SIGHUP)
	defer signal.Stop(reload)
	changed := make(chan struct{}, 1)
	if f.watch && f.planFile == "" {
		if err := watch(ctx, dir, changed, logger); err != nil {
			return exit(1, err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			logger.Info("stopping")
			return nil
		case <-reload:
		case <-changed:
		case next := <-plans:
			ch := ex.Apply(ctx, next)
			logger.Info("stored definitions changed; plan applied", "started", ch.Started, "stopped", ch.Stopped, "restarted", ch.Restarted, "updated", ch.Updated, "kept", len(ch.Kept))
			continue
		}
		next, err := load(ex.Plan())
		if err != nil {
			logger.Error("the changed definitions are invalid; the running plan is kept")
			fmt.Fprintln(os.Stderr, err)
			continue
		}
		ch := ex.Apply(ctx, next)
		logger.Info("plan applied", "started", ch.Started, "stopped", ch.Stopped, "restarted", ch.Restarted, "updated", ch.Updated, "kept", len(ch.Kept))
	}
}

// report runs the metrics reporter of the executor's jobs until ctx ends
// or the returned function is called, which stops it and waits for its
// last report.
func report(ctx context.Context, ex *executor.Executor, logger *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		metrics.NewReporter(ex.Registry(), logger).Run(ctx, ex.Plan)
	}()
	return func() { cancel(); <-done }
}

// serverTLS loads --tls-cert and --tls-key, which go together; nil
// without them.
func serverTLS(f runFlags) (*tls.Config, error) {
	if f.tlsCert == "" && f.tlsKey == "" {
		return nil, nil
	}
	if f.tlsCert == "" || f.tlsKey == "" {
		return nil, errors.New("--tls-cert and --tls-key go together: pass both, or neither to serve --http without TLS")
	}
	if f.httpAddr == "" {
		return nil, errors.New("--tls-cert serves --http over TLS, but --http is not given")
	}
	cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", f.tlsCert, f.tlsKey, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// serve starts the HTTP API, over TLS when tlsConf is not nil. It refuses
// an address that is taken at once rather than failing later in the
// background.
func serve(addr string, tlsConf *tls.Config, h http.Handler, logger *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--http %s: %w", addr, err)
	}
	scheme := "http"
	if tlsConf != nil {
		ln, scheme = tls.NewListener(ln, tlsConf), "https"
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsConf}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP API stopped", "error", err)
		}
	}()
	logger.Info("serving the HTTP API", "url", scheme+"://"+ln.Addr().String())
	return srv, nil
}

// watch signals changed whenever a .cue file of dir is written, created,
// removed or renamed; bursts of events (an editor's save) give one signal.
func watch(ctx context.Context, dir string, changed chan<- struct{}, logger *slog.Logger) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return fmt.Errorf("--watch %s: %w", dir, err)
	}
	go func() {
		defer w.Close()
		var settle <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-w.Events:
				if len(ev.Name) > 4 && ev.Name[len(ev.Name)-4:] == ".cue" {
					settle = time.After(200 * time.Millisecond)
				}
			case err := <-w.Errors:
				logger.Warn("watching definitions", "error", err)
			case <-settle:
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		}
	}()
	return nil
}

func newLogger(asJSON bool, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if asJSON {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
}
