package kafkaconn_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
)

// TestCompressor round-trips a batch-sized input through each tier codec's
// compressor and kgo's decompressor, and checks that lz4 frames are written
// as Kafka's own producer writes them: 64 KiB blocks, no content checksum.
func TestCompressor(t *testing.T) {
	src := bytes.Repeat([]byte("ferry mirrors records both ways; "), 10000) // 330 KB: several lz4 blocks
	for _, c := range []struct {
		name  string
		codec kgo.CompressionCodecType
	}{
		{"lz4", kgo.CodecLz4},
		{"zstd", kgo.CodecZstd},
		{"snappy", kgo.CodecSnappy},
		{"gzip", kgo.CodecGzip},
	} {
		comp := kafkaconn.Compressor(c.name)
		if comp == nil {
			t.Fatalf("%s: no compressor", c.name)
		}
		// The same compressor twice: a pooled writer must start afresh.
		for range 2 {
			out, codec := comp.Compress(new(bytes.Buffer), src)
			if codec != c.codec {
				t.Fatalf("%s: codec %d, want %d", c.name, codec, c.codec)
			}
			back, err := kgo.DefaultDecompressor().Decompress(out, codec)
			if err != nil {
				t.Fatalf("%s: decompress: %v", c.name, err)
			}
			if !bytes.Equal(back, src) {
				t.Fatalf("%s: %d bytes back, not the %d written", c.name, len(back), len(src))
			}
			if c.name != "lz4" {
				continue
			}
			// LZ4 frame: magic, then FLG (bit 2: content checksum) and BD
			// (bits 4-6: block max size, 4 = 64 KiB).
			if magic := binary.LittleEndian.Uint32(out); magic != 0x184D2204 {
				t.Fatalf("lz4: magic %#x", magic)
			}
			if flg := out[4]; flg&0x04 != 0 {
				t.Errorf("lz4: FLG %#08b sets the content checksum", flg)
			}
			if bd := out[5]; bd>>4&0x07 != 4 {
				t.Errorf("lz4: BD %#08b, want 64 KiB blocks (4)", bd)
			}
		}
	}
	if c := kafkaconn.Compressor("none"); c != nil {
		t.Errorf("none: compressor %T, want none", c)
	}
}
