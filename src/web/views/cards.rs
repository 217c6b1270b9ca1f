//! Cards rendered once per film and reused by every page that shows them: key-based fragments,
//! as Rails' "Russian doll" caching names them. A card holds only what its film says (title, year,
//! genre, director, ratings, the poster's letters and colour); where it sits on a page (its
//! position, the page it starts) is written around it by the feed. A card is kept with what it
//! shows and reused only for a film that shows the same, so it is never older than the film it is
//! shown for — even when an operator changed a film by hand, which gives it no new version.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use askama::Template;

use super::feed::Card;
use crate::movies::Movie;

/// Cards kept at most (about 700 bytes of markup each, and the film, most often the copy the decoded
/// films hold too); past it, all are dropped and the cards shown next are kept again. 4,096 holds
/// the embedded catalog whole.
const CARDS: usize = 4096;

/// A card's inner markup, as one film's fields make it.
#[derive(Template)]
#[template(path = "movies/_card_body.html")]
struct CardBody<'a> {
    card: &'a Card,
}

/// A card on a feed: its film (the feed writes its slug on the card's element) and its markup.
pub struct FeedCard {
    pub movie: Arc<Movie>,
    pub body: Arc<str>,
}

/// Whether `a` and `b` show the same card: the fields a card shows (besides the slug, its key).
fn same_card(a: &Movie, b: &Movie) -> bool {
    a.title == b.title
        && a.release_date == b.release_date
        && a.genre == b.genre
        && a.director == b.director
        && a.imdb_rating == b.imdb_rating
        && a.mpaa_rating == b.mpaa_rating
}

/// A card as kept: the film it was rendered from (shared with the pages that read it), and its
/// markup.
type Rendered = (Arc<Movie>, Arc<str>);

/// The cards rendered so far, by slug.
#[derive(Default)]
pub struct Cards {
    rendered: RwLock<HashMap<Box<str>, Rendered>>,
}

impl Cards {
    /// `movie`'s card: the one rendered before for a film that showed the same, or rendered now.
    pub fn card(&self, movie: Arc<Movie>) -> FeedCard {
        if let Ok(rendered) = self.rendered.read()
            && let Some((from, body)) = rendered.get(movie.slug.as_str())
            && (Arc::ptr_eq(from, &movie) || same_card(from, &movie))
        {
            return FeedCard { body: body.clone(), movie };
        }
        let card = Card::new(&movie);
        // a card's template only places the film's values: it cannot fail
        let body: Arc<str> = CardBody { card: &card }.render().unwrap_or_default().into();
        if let Ok(mut rendered) = self.rendered.write() {
            if rendered.len() >= CARDS && !rendered.contains_key(card.slug.as_str()) {
                rendered.clear();
            }
            rendered.insert(card.slug.as_str().into(), (movie.clone(), body.clone()));
        }
        FeedCard { movie, body }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::movies::Date;

    fn card_of(cards: &Cards, movie: Movie) -> FeedCard {
        cards.card(Arc::new(movie))
    }

    fn film(title: &str, version: i64) -> Movie {
        Movie {
            version,
            slug: "heat-1995".into(),
            director: Some("Michael Mann".into()),
            ..Movie::new(title.into(), Date::new(1995, 12, 15).unwrap_or_else(|| unreachable!()))
        }
    }

    #[test]
    fn a_card_is_rendered_again_when_what_it_shows_changed() {
        let cards = Cards::default();
        let first = card_of(&cards, film("Heat", 1));
        assert!(first.body.contains(">Heat</a>") && first.body.contains("Michael Mann"), "{}", first.body);
        let again = card_of(&cards, film("Heat", 1));
        assert!(Arc::ptr_eq(&first.body, &again.body), "the same version: the card rendered before");
        let retitled = card_of(&cards, film("Heat (1995)", 2));
        assert!(retitled.body.contains(">Heat (1995)</a>"), "a new version: {}", retitled.body);
        // Redis brought an older copy back (a restart from an older snapshot): its own card
        assert!(card_of(&cards, film("Heat", 1)).body.contains(">Heat</a>"));
        // changed by hand in the database: the same version, another director
        let by_hand = Movie { director: Some("Someone Else".into()), ..film("Heat", 1) };
        assert!(card_of(&cards, by_hand).body.contains("Someone Else"));
        // what a card does not show changes nothing
        let grossed = Movie { us_gross: Some(67_436_818), ..film("Heat", 1) };
        let before = card_of(&cards, film("Heat", 1));
        assert!(Arc::ptr_eq(&before.body, &card_of(&cards, grossed).body));
    }

    #[test]
    fn every_card_is_escaped_and_at_most_so_many_are_kept() {
        let cards = Cards::default();
        let card = card_of(&cards, film("<script>alert(1)</script>", 1));
        assert!(!card.body.contains("<script>") && card.body.contains("&#60;script&#62;"), "{}", card.body);
        for n in 0..CARDS + 10 {
            card_of(&cards, Movie { slug: format!("film-{n}"), ..film("Heat", 1) });
            assert!(cards.rendered.read().unwrap().len() <= CARDS);
        }
    }
}
