// The web page's one script (the Content-Security-Policy allows no inline script).
// It asks before a delete or an unpair, and keeps the page live: the server sends the
// page's parts as server-sent events; boards, today and pairing are replaced whole, the
// recordings merged row by row, so a recording that is playing keeps playing.
"use strict";

(function () {
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  var live = document.getElementById("live");
  if (!live || !window.EventSource) {
    return;
  }

  function parse(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    return template.content;
  }

  function replace(part, html) {
    // Keeps open what the user opened (the lists of today's sessions).
    var open = {};
    part.querySelectorAll("[data-board] details[open]").forEach(function (d) {
      open[d.closest("[data-board]").dataset.board] = true;
    });
    part.replaceChildren(parse(html));
    part.querySelectorAll("[data-board] details").forEach(function (d) {
      if (open[d.closest("[data-board]").dataset.board]) {
        d.open = true;
      }
    });
  }

  function merge(part, recordings) {
    // Rows never change: new ones are inserted, gone ones removed, the rest left alone.
    part.querySelector(".retention").replaceWith(parse(recordings.retention));
    var list = part.querySelector("ol.recs");
    var wanted = {};
    recordings.rows.forEach(function (row) { wanted[row[0]] = true; });
    var have = {};
    Array.prototype.slice.call(list.children).forEach(function (li) {
      if (wanted[li.dataset.id]) {
        have[li.dataset.id] = li;
      } else {
        li.remove();
      }
    });
    var cursor = list.firstElementChild;
    recordings.rows.forEach(function (row) {
      var li = have[row[0]];
      if (li === cursor && li) {
        cursor = cursor.nextElementSibling;
      } else if (li || row[1]) {
        list.insertBefore(li || parse(row[1]).firstElementChild, cursor);
      }
    });
  }

  var source = new EventSource("/events");
  source.addEventListener("update", function (event) {
    var update = JSON.parse(event.data);
    Object.keys(update.parts).forEach(function (name) {
      var part = document.querySelector('[data-part="' + name + '"]');
      if (part) {
        (name === "recordings" ? merge : replace)(part, update.parts[name]);
      }
    });
    live.textContent = "live";
    live.className = "live on";
  });
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) {
      live.textContent = "not live: reload the page (you may need to log in again)";
    } else {
      live.textContent = "reconnecting…";
    }
    live.className = "live off";
  });
}());
