-- What the cache must still learn of committed writes: one row per film a write changed (slug),
-- or one for the order alone (slug null), written in the write's own transaction. The writer
-- deletes its rows once Redis took the change; the relay every server runs applies the rest.
-- created_at is the database's clock in Unix milliseconds, so ages agree across servers.
create table cache_log (
    id              integer primary key autoincrement,
    slug            text,
    version         bigint not null,
    order_changed   bigint not null,
    created_at      bigint not null default (cast((julianday('now') - 2440587.5) * 86400000 as integer))
);
create index cache_log_version on cache_log (version);
