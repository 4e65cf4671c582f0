# The pipelines of design.md (pipelines/pipelines.cue), declared with
# Terraform instead of CUE. Apply it to an executor group started with
# `ferry run --home dc1=127.0.0.1:19092 --http 127.0.0.1:8080`.

terraform {
  required_providers {
    ferry = {
      source = "ferry-pipelines/ferry"
    }
  }
}

# The control API of any executor of the group: endpoint and token come
# from FERRY_ENDPOINT and FERRY_TOKEN, or default to 127.0.0.1:8080 and
# no token.
provider "ferry" {}

resource "ferry_datacenter" "dc1" {
  name    = "dc1"
  brokers = ["127.0.0.1:19092"]
}

resource "ferry_datacenter" "dc2" {
  name    = "dc2"
  brokers = ["127.0.0.1:29092"]
}

resource "ferry_shard" "realtime" {
  name     = "realtime"
  tiers    = [1]
  max_jobs = 100
}

resource "ferry_shard" "standard" {
  name     = "standard"
  tiers    = [2, 3, 4]
  max_jobs = 2000
}

# A mirror runs between every datacenter and on a shard that takes its
# tier, so it is created after them (and deleted before them).
resource "ferry_mirror" "orders_events" {
  name       = "orders.events"
  partitions = 6
  tier       = 1
  depends_on = [ferry_datacenter.dc1, ferry_datacenter.dc2, ferry_shard.realtime, ferry_shard.standard]
}

resource "ferry_mirror" "audit_log" {
  name       = "audit.log"
  partitions = 3
  tier       = 4
  depends_on = [ferry_datacenter.dc1, ferry_datacenter.dc2, ferry_shard.realtime, ferry_shard.standard]
}

resource "ferry_cdc_source" "trading_db" {
  name = "trading-db"
  mysql = {
    address   = "127.0.0.1:13306" # `make demo` starts a MariaDB here
    user      = "ferry"
    password  = { env = "TRADING_DB_PASSWORD" } # secrets are references, never literals
    server_id = 5401
  }
  datacenter   = ferry_datacenter.dc1.name # the Kafka cluster that receives the change events
  topic_prefix = "trading"                 # topics are <topic_prefix>.<db>.<table>
  depends_on   = [ferry_shard.realtime, ferry_shard.standard]
}

resource "ferry_cdc_table" "trading_orders" {
  source   = ferry_cdc_source.trading_db.name
  table    = "trading.orders"
  tier     = 1
  snapshot = "initial"
}

resource "ferry_cdc_table" "trading_fills" {
  source   = ferry_cdc_source.trading_db.name
  table    = "trading.fills"
  tier     = 2
  snapshot = "no_data"
}

# The plan the definitions compile to, read once they are written.
data "ferry_plan" "current" {
  depends_on = [
    ferry_mirror.orders_events, ferry_mirror.audit_log,
    ferry_cdc_table.trading_orders, ferry_cdc_table.trading_fills,
  ]
}

output "jobs" {
  value = [for j in data.ferry_plan.current.jobs : "${j.id} on ${j.shard}"]
}
