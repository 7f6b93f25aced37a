// Live pages: an element with data-live="<event stream URL>" is re-fetched and swapped in when
// the stream reports a change (at most every half second). Without this script, the page
// refreshes itself (a <noscript> meta refresh) instead.
(function () {
  "use strict";
  var body = document.querySelector("[data-live]");
  if (!body || !body.dataset.live || !window.EventSource) return;
  var pending = null;
  var stream = new EventSource(body.dataset.live);
  function refresh() {
    pending = null;
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("[data-live]");
        if (!fresh) return;
        var current = document.querySelector("[data-live]");
        var open = Array.prototype.map.call(current.querySelectorAll("details[open]"), function (d) {
          return d.querySelector("summary").textContent;
        });
        current.replaceWith(fresh);
        fresh.querySelectorAll("details").forEach(function (d) {
          if (open.indexOf(d.querySelector("summary").textContent) >= 0) d.open = true;
        });
        if (!fresh.dataset.live) stream.close();
      });
  }
  stream.onmessage = function () { if (!pending) pending = setTimeout(refresh, 500); };
})();
