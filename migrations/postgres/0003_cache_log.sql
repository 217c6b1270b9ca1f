-- What the cache must still learn of committed writes: one row per film a write changed (slug),
-- or one for the order alone (slug null), written in the write's own transaction. The writer
-- deletes its rows once Redis took the change; the relays the servers run apply the rest, each
-- row claimed by one relay at a time (FOR UPDATE SKIP LOCKED).
-- created_at is the database's clock in Unix milliseconds, so ages agree across servers.
create table cache_log (
    id              bigserial primary key,
    slug            text collate "C",
    version         bigint not null,
    order_changed   bigint not null,
    created_at      bigint not null default ((extract(epoch from clock_timestamp()) * 1000)::bigint)
);
create index cache_log_version on cache_log (version);
