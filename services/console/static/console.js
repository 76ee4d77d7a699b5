// Live updates without a build step: one EventSource per page on /events.
// - [data-feed]: new events are prepended (newest first, at most 50).
// - [data-live="/url"]: the fragment at /url is fetched again (debounced) after any event.
// - [data-reload-on="id"]: the page reloads when an event names that id.
(function () {
  "use strict";
  if (!window.EventSource) { return; }
  var feed = document.querySelector("[data-feed]");
  var live = Array.prototype.slice.call(document.querySelectorAll("[data-live]"));
  var reloadOn = document.querySelector("[data-reload-on]");
  if (!feed && live.length === 0 && !reloadOn) { return; }
  var timer = null;

  function refresh() {
    live.forEach(function (el) {
      fetch(el.getAttribute("data-live") + location.search, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { el.innerHTML = html; } });
    });
  }

  // One feed line: time, what happened, and what it is about, linked to its page (the
  // server built the link from the event's ids; text goes in as text, never as HTML).
  function describe(e) {
    var li = document.createElement("li");
    var text = e.at.slice(11, 19) + " " + e.topic + (e.status ? " " + e.status : "");
    li.appendChild(document.createTextNode(text + " "));
    var what = e.about || e.schedule_id || e.collection_id || e.execution_id || e.user_id || "";
    if (e.link) {
      var a = document.createElement("a");
      a.href = e.link;
      a.textContent = what || e.link;
      li.appendChild(a);
    } else {
      li.appendChild(document.createTextNode(what));
    }
    return li;
  }

  var source = new EventSource("/events");
  source.onmessage = function (message) {
    var e = JSON.parse(message.data);
    if (feed) {
      feed.insertBefore(describe(e), feed.firstChild);
      while (feed.children.length > 50) { feed.removeChild(feed.lastChild); }
    }
    if (reloadOn && e.execution_id === reloadOn.getAttribute("data-reload-on")) {
      location.reload();
    }
    if (live.length) {
      clearTimeout(timer);
      timer = setTimeout(refresh, 300);
    }
  };
}());
