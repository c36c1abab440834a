// The inbox's small behaviours (the CSP allows no inline scripts or handlers).
(function () {
  // A contact picture that fails to load leaves the initials under it in view.
  document.addEventListener("error", function (event) {
    var img = event.target;
    if (img && img.tagName === "IMG" && img.parentNode && img.parentNode.classList &&
        img.parentNode.classList.contains("avatar")) {
      img.remove();
    }
  }, true);
  // ... and one that failed before this script ran.
  function dropBroken(root) {
    var imgs = (root || document).querySelectorAll(".avatar img");
    for (var i = 0; i < imgs.length; i++) {
      if (imgs[i].complete && imgs[i].naturalWidth === 0 && imgs[i].getAttribute("src")) { imgs[i].remove(); }
    }
  }
  document.addEventListener("DOMContentLoaded", function () { dropBroken(document); });

  // Live polls run only while the page is visible: the list and the badge.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (document.hidden && elt && elt.matches && elt.matches("[data-live-list], [data-visible-poll]")) {
      event.preventDefault();
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden || !window.htmx) { return; }
    var list = document.querySelector("[data-live-list]");
    if (list) { window.htmx.trigger(list, "inbox:refresh"); }
  });

  // The list's refresh keeps what the page shows now: as many rows as are loaded, and the open chat marked.
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (!elt || !elt.matches || !elt.matches("[data-live-list]")) { return; }
    event.detail.parameters.shown = String(elt.querySelectorAll(".chat-row").length);
    var chat = new URLSearchParams(window.location.search).get("chat");
    if (chat) { event.detail.parameters.chat = chat; }
  });

  // Opening a chat from the list: mark its row, and on a phone show the thread pane instead of the list.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (!target || target.id !== "thread-pane") { return; }
    var inbox = target.closest(".inbox");
    if (inbox) { inbox.setAttribute("data-chat-open", "true"); }
    var source = event.detail.requestConfig && event.detail.requestConfig.elt;
    var row = source && source.closest ? source.closest(".chat-row") : null;
    if (!row) { return; }
    var current = document.querySelectorAll(".chat-link[aria-current]");
    for (var i = 0; i < current.length; i++) { current[i].removeAttribute("aria-current"); }
    var link = row.querySelector(".chat-link");
    if (link) { link.setAttribute("aria-current", "true"); }
    row.classList.remove("unread");
  });
})();
