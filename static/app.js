// marquee: the listing's infinite scroll, on top of htmx (no inline handlers anywhere: CSP).
// - #feed gets aria-busy while the next page loads;
// - keyboard users who asked for more land on the first new film;
// - a failed load shows "Couldn't load more films." with a Retry button in #more, as often as it fails;
// - Back from a film opened in the feed shows that card (below).
(function () {
  'use strict';

  var pending = null; // { count, focus } while a feed request is in flight
  var leaving = null; // { state, href } of the entry, once a film was opened from the feed

  function feed() { return document.getElementById('feed'); }
  function more() { return document.getElementById('more'); }

  // A request for the feed: the trigger's target, or htmx.ajax's.
  function isFeedRequest(detail) {
    return !!(detail && detail.target && detail.target.id === 'feed');
  }

  function cards() { return feed().getElementsByTagName('article'); }

  function status(text) {
    var el = document.getElementById('feed-status');
    if (el) el.textContent = text;
  }

  document.addEventListener('htmx:beforeRequest', function (evt) {
    if (!isFeedRequest(evt.detail)) return;
    var box = more();
    var active = document.activeElement;
    pending = { count: cards().length, focus: !!(box && active && box.contains(active)) };
    feed().setAttribute('aria-busy', 'true');
  });

  // Fired for success and failure alike (htmx re-fires it on an ancestor when the trigger was swapped out).
  document.addEventListener('htmx:afterRequest', function (evt) {
    if (!isFeedRequest(evt.detail)) return;
    feed().setAttribute('aria-busy', 'false');
    var was = pending;
    pending = null;
    if (!was || !evt.detail.successful) return;
    var list = cards();
    var added = list.length - was.count;
    if (added > 0) {
      status(added + ' more films loaded.');
      if (was.focus) {
        var link = list[was.count].querySelector('a');
        if (link) link.focus();
      }
    }
  });

  function showError(url, hadFocus) {
    var box = more();
    if (!box) return;
    var old = box.querySelector('.more-error');
    if (old) old.remove();
    box.classList.add('has-error');
    var wrap = document.createElement('div');
    wrap.className = 'more-error';
    wrap.setAttribute('role', 'alert');
    var p = document.createElement('p');
    p.textContent = "Couldn't load more films.";
    var button = document.createElement('button');
    button.type = 'button';
    button.textContent = 'Retry';
    button.addEventListener('click', function () {
      // aria-disabled, not disabled: a disabled button drops keyboard focus
      if (button.getAttribute('aria-disabled') === 'true') return;
      button.setAttribute('aria-disabled', 'true');
      button.textContent = 'Retrying…';
      // source #more: htmx puts .htmx-request on it, which shows the loading indicator;
      // on success the fragment's out-of-band #more replaces this whole box.
      htmx.ajax('GET', url, { source: box, target: '#feed', swap: 'beforeend' }).catch(function () {});
    });
    wrap.appendChild(p);
    wrap.appendChild(button);
    box.appendChild(wrap);
    if (hadFocus) button.focus();
  }

  function onError(evt) {
    var detail = evt.detail;
    if (!isFeedRequest(detail)) return;
    var url = detail.pathInfo && detail.pathInfo.requestPath;
    if (!url) return;
    var box = more();
    var active = document.activeElement;
    var hadFocus = !!(box && active && box.contains(active));
    feed().setAttribute('aria-busy', 'false');
    showError(url, hadFocus);
    status("Couldn't load more films.");
  }

  // Back from a film shows the card it was opened from, as it was on screen, with or without the
  // back/forward cache. The browser restores a cached page as it was left (every page loaded, the
  // scroll kept); without the cache it loads the entry's address again, and that document holds
  // one page of cards. So, as a film is opened from a card, the entry is made to name the page
  // that card is on (which is not always the last page loaded: the next one loads a screen
  // before the end) and to remember the card and where it was on screen; the browser's own scroll
  // restoration is turned off for that entry (it would restore a position in the longer page).
  // Back then shows that page, its lede linking to the pages before, and the script puts the card
  // where it was. Nothing here keeps a page out of the back/forward cache (no unload handler).
  function cardPageHref(card) {
    for (var c = card; c; c = c.previousElementSibling) {
      var href = c.getAttribute('data-page-href');
      if (href) return href;
    }
    return null;
  }

  document.addEventListener('click', function (evt) {
    if (evt.defaultPrevented || evt.button !== 0 || evt.ctrlKey || evt.metaKey || evt.shiftKey || evt.altKey) return;
    var link = evt.target.closest ? evt.target.closest('.movie-card a[href]') : null;
    var card = link && link.closest('.movie-card');
    if (!card || !card.parentElement || card.parentElement.id !== 'feed') return;
    var state = Object.assign({}, history.state, {
      card: card.getAttribute('data-slug'),
      top: Math.round(card.getBoundingClientRect().top),
      keyboard: evt.detail === 0 // a click from Enter: the focus goes back to the card's link
    });
    leaving = { state: state, href: cardPageHref(card) || location.href };
    history.scrollRestoration = 'manual';
    history.replaceState(leaving.state, '', leaving.href);
  });

  // A page still loading as the reader leaves names itself in the address when it comes (htmx's
  // HX-Replace-Url), which would wipe the card out of the entry: the entry is written again. (The
  // page is added: dropping it would leave the feed without a trigger if the reader comes back.)
  document.addEventListener('htmx:replacedInHistory', function () {
    if (leaving) history.replaceState(leaving.state, '', leaving.href);
  });

  // The card the entry remembers, forgotten at once: a reload after this shows the top of the
  // page the address names (the entry's scroll restoration stays off: turned back on now, the
  // browser would still apply its own).
  function openedCard() {
    var state = history.state;
    if (!state || !state.card) return null;
    var rest = Object.assign({}, state);
    delete rest.card; delete rest.top; delete rest.keyboard;
    history.replaceState(rest, '');
    return state;
  }

  // A page loaded again: the card where it was on screen, or as near as fits (another window size).
  function showOpenedCard() {
    var state = openedCard();
    if (!state) return;
    var card = null;
    var list = cards();
    for (var i = 0; i < list.length; i++) {
      if (list[i].getAttribute('data-slug') === state.card) { card = list[i]; break; }
    }
    if (!card) return;
    var room = Math.max(0, window.innerHeight - Math.min(card.offsetHeight, window.innerHeight));
    var top = Math.min(Math.max(state.top || 0, 0), room);
    window.scrollTo({ top: card.getBoundingClientRect().top + window.scrollY - top, behavior: 'instant' });
    if (state.keyboard) {
      var link = card.querySelector('a');
      if (link) link.focus({ preventScroll: true });
    }
  }

  if (feed()) showOpenedCard();
  window.addEventListener('pageshow', function (evt) {
    // restored from the back/forward cache: as it was left, the scroll too
    if (!evt.persisted || !feed()) return;
    leaving = null;
    openedCard();
  });

  // "Back" on a film's page: when the reader came from the very page it names, go back in the
  // history instead, so that they land where they were (the cards loaded, the scroll kept).
  document.addEventListener('click', function (evt) {
    var link = evt.target.closest ? evt.target.closest('a[data-back]') : null;
    if (!link || !document.referrer || history.length < 2) return;
    var from;
    try { from = new URL(document.referrer); } catch (e) { return; }
    if (from.origin !== location.origin || from.pathname + from.search !== link.getAttribute('href')) return;
    evt.preventDefault();
    history.back();
  });

  ['htmx:responseError', 'htmx:sendError', 'htmx:timeout', 'htmx:swapError', 'htmx:onLoadError'].forEach(function (name) {
    document.addEventListener(name, onError);
  });
})();
