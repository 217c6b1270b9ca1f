-- The cache log keeps a row after Redis took its write (applied_at: when, by the database's clock,
-- in Unix milliseconds; null while pending), until the longest TTL has passed: a Redis that loses
-- writes it had taken (restarted from an older snapshot, a replica promoted before it received
-- them) is repaired by applying the kept rows again (see src/service/relay.rs).
alter table cache_log add column applied_at bigint;
-- what the relays look for twice a second: the rows not applied yet
create index cache_log_pending on cache_log (created_at) where applied_at is null;
-- the rows past every TTL, pruned (a range scan, not a walk of the table)
create index cache_log_created on cache_log (created_at);
