package compiler

import (
	"time"

	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// DefaultBudgets are the latency budgets of tiers 1 to 4 unless a definition
// set overrides them.
var DefaultBudgets = [5]time.Duration{
	1: 300 * time.Millisecond,
	2: 10 * time.Second,
	3: 10 * time.Minute,
	4: time.Hour,
}

// DefaultMetricsInterval is how often the metrics reporter writes a job's
// figures unless metrics.interval says otherwise.
const DefaultMetricsInterval = 10 * time.Second

// tierClients are the Kafka client settings of each tier. Tier 1 favours
// latency: no linger, small batches, short fetch waits and a transaction
// every 10 ms; lz4, which costs a 200-byte record well under a microsecond,
// halves what crosses the network and the broker (a mirror job copied 1.5x
// the records per second with it as without compression). Tier 4 favours throughput: long lingers, large
// batches, fetches that wait for 1 MiB, zstd and a transaction every 5 s.
// docs/language.md shows this table; keep the two in step.
var tierClients = [5]plan.ClientSettings{
	1: {Linger: 0, BatchMaxBytes: 256 << 10, FetchMaxWait: ms(10), FetchMinBytes: 1, Compression: "lz4", CommitInterval: ms(10)},
	2: {Linger: ms(5), BatchMaxBytes: 512 << 10, FetchMaxWait: ms(100), FetchMinBytes: 16 << 10, Compression: "lz4", CommitInterval: ms(100)},
	3: {Linger: ms(50), BatchMaxBytes: 1 << 20, FetchMaxWait: ms(500), FetchMinBytes: 256 << 10, Compression: "zstd", CommitInterval: ms(1000)},
	4: {Linger: ms(100), BatchMaxBytes: 1 << 20, FetchMaxWait: ms(1000), FetchMinBytes: 1 << 20, Compression: "zstd", CommitInterval: ms(5000)},
}

// ClientSettings derives a job's client settings from its tier and budget.
// A budget overridden below the tier's defaults pulls the waits down with
// it: the commit interval and fetch wait stay within a tenth of the budget,
// the linger within a twentieth, so a job can meet its budget.
func ClientSettings(tier int, budget time.Duration) plan.ClientSettings {
	c := tierClients[tier]
	c.CommitInterval = plan.Duration(min(c.CommitInterval.D(), budget/10))
	c.FetchMaxWait = plan.Duration(min(c.FetchMaxWait.D(), budget/10))
	c.Linger = plan.Duration(min(c.Linger.D(), budget/20))
	return c
}

func ms(n int) plan.Duration { return plan.Duration(time.Duration(n) * time.Millisecond) }
