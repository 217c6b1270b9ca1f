-- films: one row per film; slug is the key users see in URLs.
-- release_date is ISO text (YYYY-MM-DD), which sorts in date order.
-- version is the catalog version of the row's last write (see catalog below).
create table films (
    slug                    text primary key not null,
    title                   text not null,
    release_date            text not null check (release_date glob '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    genre                   text,
    director                text,
    mpaa_rating             text,
    running_time_min        integer,
    imdb_rating             real,
    imdb_votes              integer,
    rotten_tomatoes_rating  integer,
    us_gross                integer,
    worldwide_gross         integer,
    us_dvd_sales            integer,
    production_budget       integer,
    distributor             text,
    source                  text,
    creative_type           text,
    version                 integer not null
);

-- the listing order: newest release first, ties by slug
create index films_listing on films (release_date desc, slug);

-- one row: a counter bumped by every write (films take it as their version, so versions only grow,
-- across deletes and re-creations too), a second one bumped when the listing order changes, and the
-- number of films, kept here so that no page needs a count(*).
create table catalog (
    id              integer primary key check (id = 1),
    version         integer not null,
    order_version   integer not null,
    film_count      integer not null
);
insert into catalog (id, version, order_version, film_count) values (1, 0, 0, 0);
