package kafkaconn

import (
	"bytes"
	"strconv"
	"sync"

	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Compress is the producer option of the codec a tier names ("lz4",
// "zstd", "snappy", "gzip"; anything else is none). Every producer of a job
// uses it, dead-letter replay included, so that they agree on what fits a
// topic's max.message.bytes.
func Compress(name string) kgo.Opt {
	if c := Compressor(name); c != nil {
		return kgo.WithCompressor(c)
	}
	return kgo.ProducerBatchCompression(kgo.NoCompression())
}

// codec is the kgo codec of a tier's codec name.
func codec(name string) kgo.CompressionCodec {
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

// Compressor compresses record batches with the codec a tier names (see
// Compress); nil for none. Its lz4 frames are written as Kafka's own
// producer writes them (KafkaLZ4BlockOutputStream): 64 KiB blocks and no
// content checksum, which the batch's CRC-32C makes redundant. kgo's
// default writer hashed every lz4 batch as it wrote it and again wherever
// it was read (a mirror reads its copies back): about a tenth of the CPU a
// Tier 1 mirror spent per record.
func Compressor(name string) kgo.Compressor {
	if name == "lz4" {
		return lz4Compressor{}
	}
	// Uncompressed where a broker older than Kafka 2.1 cannot take zstd.
	c, _ := kgo.DefaultCompressor(codec(name), kgo.NoCompression()) // nil for none; never fails
	return c
}

// lz4Compressor writes lz4 frames without a content checksum.
type lz4Compressor struct{}

var lz4Writers = sync.Pool{New: func() any {
	w := lz4.NewWriter(nil)
	_ = w.Apply(lz4.ChecksumOption(false), lz4.BlockSizeOption(lz4.Block64Kb)) // a Writer takes them
	return w
}}

func (lz4Compressor) Compress(dst *bytes.Buffer, src []byte, _ ...kgo.CompressFlag) ([]byte, kgo.CompressionCodecType) {
	w := lz4Writers.Get().(*lz4.Writer)
	defer lz4Writers.Put(w)
	w.Reset(dst)
	if _, err := w.Write(src); err != nil {
		return nil, kgo.CodecError
	}
	if err := w.Close(); err != nil {
		return nil, kgo.CodecError
	}
	return dst.Bytes(), kgo.CodecLz4
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
