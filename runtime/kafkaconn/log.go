package kafkaconn

import (
	"context"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Logger passes the Kafka client's own log lines to l: warnings and errors
// always, everything down to the protocol's steps when l logs at debug
// level (`ferry run --log-level debug`).
func Logger(l *slog.Logger) kgo.Logger { return &logger{l} }

type logger struct{ l *slog.Logger }

func (k *logger) Level() kgo.LogLevel {
	if k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelDebug
	}
	return kgo.LogLevelWarn
}

func (k *logger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
		lv = slog.LevelWarn
	case kgo.LogLevelInfo:
		lv = slog.LevelInfo
	}
	k.l.Log(context.Background(), lv, "kafka client: "+msg, keyvals...)
}
