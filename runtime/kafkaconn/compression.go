package kafkaconn

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Compression is the codec a tier names ("lz4", "zstd", "snappy", "gzip";
// anything else is none). Every producer of a job uses it, dead-letter
// replay included, so that they agree on what fits a topic's
// max.message.bytes.
func Compression(name string) kgo.CompressionCodec {
	switch name {
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "gzip":
		return kgo.GzipCompression()
	}
	return kgo.NoCompression()
}

// DefaultMaxMessageBytes is Kafka's default max.message.bytes.
const DefaultMaxMessageBytes = 1000012

// MaxMessageBytes is a topic's max.message.bytes in described configs,
// the largest record batch its brokers accept after compression; Kafka's
// default where the configs do not say.
func MaxMessageBytes(rcs kadm.ResourceConfigs, topic string) int32 {
	rc, err := rcs.On(topic, nil)
	if err != nil {
		return DefaultMaxMessageBytes
	}
	for _, c := range rc.Configs {
		if c.Key == "max.message.bytes" && c.Value != nil {
			if v, err := strconv.Atoi(*c.Value); err == nil && v > 0 {
				return int32(v)
			}
		}
	}
	return DefaultMaxMessageBytes
}
