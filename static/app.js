// marquee: the listing's infinite scroll, on top of htmx (no inline handlers anywhere: CSP).
// - #feed gets aria-busy while the next page loads;
// - keyboard users who asked for more land on the first new film;
// - a failed load shows "Couldn't load more films." with a Retry button in #more, as often as it fails.
(function () {
  'use strict';

  var pending = null; // { count, focus } while a feed request is in flight

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
