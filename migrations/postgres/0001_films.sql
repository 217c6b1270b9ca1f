-- films: one row per film; slug is the key users see in URLs.
-- release_date is ISO text (YYYY-MM-DD), which sorts in date order; text columns that order the
-- listing use the "C" collation so both databases sort them the same way.
-- version is the catalog version of the row's last write (see catalog below).
create table films (
    slug                    text collate "C" primary key,
    title                   text not null,
    release_date            text collate "C" not null check (release_date ~ '^\d{4}-\d{2}-\d{2}$'),
    genre                   text,
    director                text,
    mpaa_rating             text,
    running_time_min        bigint,
    imdb_rating             double precision,
    imdb_votes              bigint,
    rotten_tomatoes_rating  bigint,
    us_gross                bigint,
    worldwide_gross         bigint,
    us_dvd_sales            bigint,
    production_budget       bigint,
    distributor             text,
    source                  text,
    creative_type           text,
    version                 bigint not null
);

-- the listing order: newest release first, ties by slug
create index films_listing on films (release_date desc, slug);

-- one row: a counter bumped by every write (films take it as their version, so versions only grow,
-- across deletes and re-creations too), a second one bumped when the listing order changes, and the
-- number of films, kept here so that no page needs a count(*).
create table catalog (
    id              bigint primary key check (id = 1),
    version         bigint not null,
    order_version   bigint not null,
    film_count      bigint not null
);
insert into catalog (id, version, order_version, film_count) values (1, 0, 0, 0);
