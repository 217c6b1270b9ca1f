//! Cards rendered once per film version and reused by every page that shows them: key-based
//! fragments, as Rails' "Russian doll" caching names them. A card holds only what its film says
//! (title, year, genre, director, ratings, the poster's letters and colour); where it sits on a
//! page (its position, the page it starts) is written around it by the feed. Its key is the film's
//! slug and version, and the version comes with the film's own copy (every write gives a film a
//! new, larger one: see `db::repo`), so a card is never older than the film it is shown for.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use askama::Template;

use super::feed::Card;
use crate::movies::Movie;

/// Cards kept at most (about 700 bytes each); past it, all are dropped and the cards shown next
/// are kept again. 4,096 holds the embedded catalog whole.
const CARDS: usize = 4096;

/// A card's inner markup, as one film's fields make it.
#[derive(Template)]
#[template(path = "movies/_card_body.html")]
struct CardBody<'a> {
    card: &'a Card,
}

/// A card on a feed: its film's slug (the feed writes it on the card's element) and its markup.
pub struct FeedCard {
    pub slug: String,
    pub body: Arc<str>,
}

/// A card as kept: the version it was rendered at, and its markup.
type Rendered = (i64, Arc<str>);

/// The cards rendered so far, by slug.
#[derive(Default)]
pub struct Cards {
    rendered: RwLock<HashMap<Box<str>, Rendered>>,
}

impl Cards {
    /// `movie`'s card: the one rendered for its version, or rendered now.
    pub fn card(&self, movie: Movie) -> FeedCard {
        if let Ok(rendered) = self.rendered.read()
            && let Some((version, body)) = rendered.get(movie.slug.as_str())
            && *version == movie.version
        {
            return FeedCard { body: body.clone(), slug: movie.slug };
        }
        let version = movie.version;
        let card = Card::new(movie);
        // a card's template only places the film's values: it cannot fail
        let body: Arc<str> = CardBody { card: &card }.render().unwrap_or_default().into();
        if let Ok(mut rendered) = self.rendered.write() {
            if rendered.len() >= CARDS && !rendered.contains_key(card.slug.as_str()) {
                rendered.clear();
            }
            rendered.insert(card.slug.as_str().into(), (version, body.clone()));
        }
        FeedCard { slug: card.slug, body }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::movies::Date;

    fn film(title: &str, version: i64) -> Movie {
        Movie {
            version,
            slug: "heat-1995".into(),
            director: Some("Michael Mann".into()),
            ..Movie::new(title.into(), Date::new(1995, 12, 15).unwrap_or_else(|| unreachable!()))
        }
    }

    #[test]
    fn a_card_is_rendered_again_for_a_new_version_only() {
        let cards = Cards::default();
        let first = cards.card(film("Heat", 1));
        assert!(first.body.contains(">Heat</a>") && first.body.contains("Michael Mann"), "{}", first.body);
        let again = cards.card(film("Heat", 1));
        assert!(Arc::ptr_eq(&first.body, &again.body), "the same version: the card rendered before");
        let retitled = cards.card(film("Heat (1995)", 2));
        assert!(retitled.body.contains(">Heat (1995)</a>"), "a new version: {}", retitled.body);
        // Redis brought an older copy back (a restart from an older snapshot): its own card
        assert!(cards.card(film("Heat", 1)).body.contains(">Heat</a>"));
    }

    #[test]
    fn every_card_is_escaped_and_at_most_so_many_are_kept() {
        let cards = Cards::default();
        let card = cards.card(film("<script>alert(1)</script>", 1));
        assert!(!card.body.contains("<script>") && card.body.contains("&#60;script&#62;"), "{}", card.body);
        for n in 0..CARDS + 10 {
            cards.card(Movie { slug: format!("film-{n}"), ..film("Heat", 1) });
            assert!(cards.rendered.read().unwrap().len() <= CARDS);
        }
    }
}
