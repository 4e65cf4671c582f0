// Package headers names the record headers ferry writes, which more than
// one job kind (and ferry's users) read: docs/design/design.md fixes them.
package headers

// Mirroring: the datacenter a copied record comes from and its offset
// there (decimal text). A record carrying Origin is never copied again.
const (
	Origin       = "ferry.origin"
	OriginOffset = "ferry.origin.offset"
)

// SourceTime carries, on every CDC change record, the commit time lower
// bound the CDC job measures latency from, in microseconds since the epoch
// as decimal text: finer than source.ts_ms where the binlog has whole
// seconds. The sink measures end-to-end latency by it.
const SourceTime = "ferry.source.ts_us"
