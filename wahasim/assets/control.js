// The simulator's control page, kept live: every few seconds read the page again and copy over only what
// changes by itself (status, phone, QR, the summary line). Forms are never replaced, so whatever is being
// typed, and the focus, survive. Without scripts the page still works; its <noscript> frame shows the live table.
(function () {
  "use strict";
  var seconds = parseInt(document.body.getAttribute("data-refresh-seconds"), 10) || 3;

  function keyOf(row) {
    var name = row.getAttribute("data-session");
    return name === null ? "html:" + row.outerHTML : "session:" + name;
  }

  function syncCells(target, source) {
    var cells = source.querySelectorAll("[data-live]");
    for (var i = 0; i < cells.length; i++) {
      var mine = null;
      var candidates = target.querySelectorAll("[data-live]");
      for (var j = 0; j < candidates.length; j++) {
        if (candidates[j].getAttribute("data-live") === cells[i].getAttribute("data-live")) { mine = candidates[j]; }
      }
      if (mine && mine.innerHTML !== cells[i].innerHTML) { mine.innerHTML = cells[i].innerHTML; }
    }
  }

  function apply(doc) {
    var summary = doc.getElementById("sim-summary");
    var mySummary = document.getElementById("sim-summary");
    if (summary && mySummary && summary.innerHTML !== mySummary.innerHTML) { mySummary.innerHTML = summary.innerHTML; }

    var fresh = doc.querySelector("#sim-sessions tbody");
    var tbody = document.querySelector("#sim-sessions tbody");
    if (!fresh || !tbody) { return; }
    var mine = {};
    for (var i = 0; i < tbody.children.length; i++) { mine[keyOf(tbody.children[i])] = tbody.children[i]; }
    var wanted = [];
    for (var k = 0; k < fresh.children.length; k++) {
      var row = fresh.children[k];
      var existing = mine[keyOf(row)];
      if (existing) { syncCells(existing, row); wanted.push(existing); }
      else { wanted.push(document.importNode(row, true)); }
    }
    var same = wanted.length === tbody.children.length;
    for (var n = 0; same && n < wanted.length; n++) { same = wanted[n] === tbody.children[n]; }
    if (same) { return; }

    // Sessions came or went: put the rows in the new order, moving (not rebuilding) the ones that stay.
    var focused = document.activeElement;
    var start = null, end = null;
    try { start = focused.selectionStart; end = focused.selectionEnd; } catch (e) { start = null; }
    tbody.replaceChildren.apply(tbody, wanted);
    if (focused && focused !== document.body && document.contains(focused) && document.activeElement !== focused) {
      focused.focus();
      if (start !== null && typeof focused.setSelectionRange === "function") {
        try { focused.setSelectionRange(start, end); } catch (e) { /* not a text field */ }
      }
    }
  }

  function tick() {
    fetch(window.location.pathname, { cache: "no-store", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) { if (html) { apply(new DOMParser().parseFromString(html, "text/html")); } })
      .catch(function () { /* the simulator is restarting: try again next time */ })
      .then(function () { setTimeout(tick, seconds * 1000); });
  }

  setTimeout(tick, seconds * 1000);
})();
