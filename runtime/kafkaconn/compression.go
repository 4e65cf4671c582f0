package kafkaconn

import "github.com/twmb/franz-go/pkg/kgo"

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
