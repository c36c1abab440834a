// The inbox's thread pane (templates/inbox/_thread.html): opens at the newest message, loads older history on
// scroll up without jumping, merges live changes every 2 s while visible, and drives the composer and the
// message actions. Every request goes through fetch with the page's CSRF token; errors come back as text.
(function () {
  "use strict";

  var POLL_MS = 2000;
  var TYPING_MS = 5000;
  var NEAR_BOTTOM = 48;
  var polling = false;

  function $(root, selector) { return root ? root.querySelector(selector) : null; }
  function pane() { return document.getElementById("thread-root"); }

  function csrfToken() {
    try {
      var headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
      if (headers["X-CSRFToken"]) { return headers["X-CSRFToken"]; }
    } catch (e) { /* fall through */ }
    var input = document.querySelector("#composer input[name='csrf_token']");
    return input ? input.value : "";
  }

  function request(url, options) {
    options = options || {};
    options.headers = Object.assign({ "X-CSRFToken": csrfToken(), "Accept": "text/html" }, options.headers || {});
    options.credentials = "same-origin";
    return fetch(url, options).then(function (response) {
      return response.text().then(function (body) {
        if (!response.ok) {
          var error = new Error(readError(body, response.status));
          error.response = response;
          throw error;
        }
        return { response: response, body: body };
      });
    });
  }

  function readError(body, status) {
    var text = body || "";
    if (/^\s*</.test(text)) {  // an error page: its message, not its markup
      var doc = new DOMParser().parseFromString(text, "text/html");
      var found = doc.querySelector(".error-message, main p, p");
      text = found ? found.textContent : "";
    }
    text = text.trim();
    if (status === 400 && !text) { text = portalWord("expired"); }
    return text || portalWord("failed", {status: status});
  }

  function say(root, message, isError) {
    var error = $(root, "#thread-error");
    var notice = $(root, "#thread-notice");
    if (error) { error.hidden = !isError; error.textContent = isError ? message : ""; }
    if (notice) { notice.hidden = isError || !message; notice.textContent = isError ? "" : (message || ""); }
  }

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID().replace(/-/g, ""); }
    var out = "";
    for (var i = 0; i < 32; i++) { out += Math.floor(Math.random() * 16).toString(16); }
    return out;
  }

  // ---- the message list -------------------------------------------------------------------------------------

  function parseItems(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    return Array.prototype.slice.call(template.content.querySelectorAll("li.tmsg"));
  }

  function fixSeparators(list) {
    var old = list.querySelectorAll(":scope > li.day-sep");
    for (var i = 0; i < old.length; i++) { old[i].remove(); }
    var previous = null;
    var items = list.querySelectorAll(":scope > li.tmsg");
    for (var j = 0; j < items.length; j++) {
      var day = items[j].getAttribute("data-day");
      if (day !== previous) {
        var sep = document.createElement("li");
        sep.className = "day-sep";
        sep.setAttribute("data-day", day);
        var label = document.createElement("span");
        label.textContent = items[j].getAttribute("data-day-label") || day;
        sep.appendChild(label);
        list.insertBefore(sep, items[j]);
        previous = day;
      }
    }
  }

  function editing(item) {
    var form = item.querySelector("form.tedit");
    return (form && !form.hidden) || item.querySelector("form.tforward") || item.querySelector("details[open]");
  }

  // Merge messages (new ones appended in order, known ones replaced when they changed); true if any was new.
  function merge(root, items, force) {
    var list = $(root, "#thread-list");
    var added = false;
    items.forEach(function (item) {
      var existing = document.getElementById(item.id);
      if (existing && list.contains(existing)) {
        var changed = existing.getAttribute("data-version") !== item.getAttribute("data-version");
        if (force || (changed && !editing(existing))) { existing.replaceWith(item); }
      } else {
        list.appendChild(item);
        added = true;
      }
    });
    if (items.length) {
      fixSeparators(list);
      var empty = $(root, "#thread-empty");
      if (empty) { empty.remove(); }
    }
    return added;
  }

  function scroller(root) { return $(root, "#thread-scroll"); }
  function atBottom(root) {
    var box = scroller(root);
    return !box || box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM;
  }
  function toBottom(root) {
    var box = scroller(root);
    if (box) { box.scrollTop = box.scrollHeight; }
  }

  function loadOlder(root) {
    var cursor = root.getAttribute("data-older");
    if (!cursor || root.dataset.loadingOlder === "1") { return; }
    root.dataset.loadingOlder = "1";
    var url = root.getAttribute("data-older-url") + "?before=" + encodeURIComponent(cursor);
    request(url).then(function (result) {
      var box = scroller(root);
      var list = $(root, "#thread-list");
      var before = box.scrollHeight;
      var top = box.scrollTop;
      var first = list.firstChild;
      parseItems(result.body).forEach(function (item) {
        if (!document.getElementById(item.id)) { list.insertBefore(item, first); }
      });
      fixSeparators(list);
      box.scrollTop = top + (box.scrollHeight - before);  // the message that was on screen stays where it was
      var older = result.response.headers.get("X-Older") || "";
      root.setAttribute("data-older", older);
      var oldest = result.response.headers.get("X-Oldest");
      if (oldest) { root.setAttribute("data-oldest", oldest); }
      if (!older) { $(root, "#thread-start").textContent = portalWord("threadStart"); }
    }).catch(function (error) { say(root, error.message, true); })
      .then(function () { root.dataset.loadingOlder = ""; });
  }

  function poll() {
    var root = pane();
    if (!root || polling || document.hidden) { return; }
    polling = true;
    var url = root.getAttribute("data-fresh-url") + "?after=" + encodeURIComponent(root.getAttribute("data-after")) +
      "&seen=1" + (root.getAttribute("data-oldest") ? "&from=" + encodeURIComponent(root.getAttribute("data-oldest")) : "");
    request(url).then(function (result) {
      if (pane() !== root) { return; }
      var bottom = atBottom(root);
      var items = parseItems(result.body);
      var added = merge(root, items, false);
      root.setAttribute("data-after", result.response.headers.get("X-After") || root.getAttribute("data-after"));
      if (added && bottom) { toBottom(root); }
    }).catch(function () { /* the next poll tries again */ })
      .then(function () { polling = false; });
  }

  // ---- the composer ------------------------------------------------------------------------------------------

  function composerOf(root) { return $(root, "#composer"); }

  function resetComposer(form) {
    form.querySelector("textarea[name='text']").value = "";
    form.querySelector("input[name='idempotency_key']").value = newKey();
    var later = form.querySelector("input[name='send_at']");
    if (later) { later.value = ""; }
    clearFile(form);
    cancelReply(form);
    hideQuick(form);
  }

  function clearFile(form) {
    var input = form.querySelector("input[type='file']");
    input.value = "";
    var box = form.querySelector(".composer-file");
    var thumb = box.querySelector("img");
    if (thumb.src) { URL.revokeObjectURL(thumb.src); thumb.removeAttribute("src"); }
    thumb.hidden = true;
    box.hidden = true;
  }

  function showFile(root, form, input) {
    var file = input.files && input.files[0];
    if (!file) { clearFile(form); return; }
    var max = parseInt(input.getAttribute("data-max-bytes"), 10);
    if (!isNaN(max) && file.size > max) {
      say(root, input.getAttribute("data-too-large"), true);
      clearFile(form);
      return;
    }
    var box = form.querySelector(".composer-file");
    box.querySelector(".composer-file-name").textContent = file.name;
    box.querySelector(".composer-file-size").textContent = file.size >= 1048576
      ? (file.size / 1048576).toFixed(1) + " MB" : Math.max(1, Math.round(file.size / 1024)) + " KB";
    var thumb = box.querySelector("img");
    if (/^image\//.test(file.type)) { thumb.src = URL.createObjectURL(file); thumb.hidden = false; }
    else { thumb.hidden = true; }
    box.hidden = false;
  }

  function startReply(form, button) {
    form.querySelector("input[name='reply_to']").value = button.getAttribute("data-reply");
    var chip = form.querySelector(".composer-reply");
    chip.querySelector(".composer-reply-who").textContent = button.getAttribute("data-reply-who");
    chip.querySelector(".composer-reply-text").textContent = button.getAttribute("data-reply-text");
    chip.hidden = false;
    form.querySelector("textarea").focus();
  }

  function cancelReply(form) {
    form.querySelector("input[name='reply_to']").value = "";
    form.querySelector(".composer-reply").hidden = true;
  }

  function send(root, form) {
    if (form.dataset.sending === "1") { return; }
    var text = form.querySelector("textarea[name='text']");
    var file = form.querySelector("input[type='file']");
    if (!text.value.trim() && !(file.files && file.files.length)) { return; }
    form.dataset.sending = "1";
    var button = form.querySelector(".composer-send");
    button.disabled = true;
    request(form.getAttribute("action"), { method: "POST", body: new FormData(form) }).then(function (result) {
      if (result.response.status === 202) {  // scheduled for later: nothing joins the thread yet
        say(root, result.body, false);
        resetComposer(form);
        return;
      }
      say(root, "", false);
      merge(root, parseItems(result.body), true);
      resetComposer(form);
      toBottom(root);
    }).catch(function (error) {
      // what was typed stays; a retry sends under the same key unless the server says this one is spent
      say(root, error.response ? error.message : portalWord("unreachable"), true);
      if (error.response && error.response.headers.get("X-New-Key")) {
        form.querySelector("input[name='idempotency_key']").value = newKey();
      }
    }).then(function () {
      form.dataset.sending = "";
      button.disabled = false;
      text.focus();
    });
  }

  function typing(form) {
    var now = Date.now();
    var last = parseInt(form.dataset.typedAt || "0", 10);
    if (now - last < TYPING_MS) { return; }
    form.dataset.typedAt = String(now);
    request(form.getAttribute("data-typing-url"), { method: "POST" }).catch(function () { /* a courtesy */ });
  }

  function insertAtCaret(field, value) {
    var start = field.selectionStart || 0;
    var end = field.selectionEnd || 0;
    field.value = field.value.slice(0, start) + value + field.value.slice(end);
    field.selectionStart = field.selectionEnd = start + value.length;
    field.focus();
  }

  // ---- quick replies: "/" + the start of a shortcut ----------------------------------------------------------

  function hideQuick(form) {
    var list = form.querySelector(".composer-quick");
    list.hidden = true;
    list.textContent = "";
  }

  function lookUpQuick(form) {
    var url = form.getAttribute("data-quick-url");
    var value = form.querySelector("textarea").value;
    var match = /^\/(\S*)$/.exec(value);
    if (!url || !match) { hideQuick(form); return; }
    var asked = value;
    request(url + "?q=" + encodeURIComponent(match[1]) + "&chat=" + encodeURIComponent(form.getAttribute("data-chat")))
      .then(function (result) {
        if (form.querySelector("textarea").value !== asked) { return; }
        var template = document.createElement("template");
        template.innerHTML = result.body;
        var found = template.content.querySelectorAll("[data-text]");
        var list = form.querySelector(".composer-quick");
        list.textContent = "";
        for (var i = 0; i < found.length; i++) {
          var option = document.createElement("li");
          option.setAttribute("role", "option");
          option.setAttribute("data-text", found[i].getAttribute("data-text"));
          option.textContent = found[i].textContent.trim() || found[i].getAttribute("data-text");
          if (i === 0) { option.setAttribute("aria-selected", "true"); }
          list.appendChild(option);
        }
        list.hidden = found.length === 0;
      }).catch(function () { hideQuick(form); });
  }

  function chooseQuick(form, option) {
    var field = form.querySelector("textarea");
    field.value = option.getAttribute("data-text");
    hideQuick(form);
    field.focus();
  }

  function moveQuick(form, step) {
    var options = form.querySelectorAll(".composer-quick li");
    var current = -1;
    for (var i = 0; i < options.length; i++) {
      if (options[i].getAttribute("aria-selected") === "true") { current = i; }
      options[i].removeAttribute("aria-selected");
    }
    var next = (current + step + options.length) % options.length;
    options[next].setAttribute("aria-selected", "true");
  }

  // ---- message actions ---------------------------------------------------------------------------------------

  function act(root, form) {
    var confirmText = form.getAttribute("data-confirm");
    if (confirmText && !window.confirm(confirmText)) { return; }
    var item = form.closest("li.tmsg");
    request(form.getAttribute("action"), { method: "POST", body: new FormData(form) }).then(function (result) {
      say(root, decodeURIComponent(result.response.headers.get("X-Notice") || ""), false);
      merge(root, parseItems(result.body), true);
    }).catch(function (error) {
      say(root, error.message, true);
      var menu = item && item.querySelector("details[open]");
      if (menu) { menu.open = false; }
    });
  }

  function toggleEdit(item, on) {
    var form = item.querySelector("form.tedit");
    var text = item.querySelector("[data-text]");
    if (!form) { return; }
    form.hidden = !on;
    if (text) { text.hidden = on; }
    var menu = item.querySelector("details[open]");
    if (menu) { menu.open = false; }
    if (on) { form.querySelector("textarea").focus(); }
  }

  function openForward(root, item, url) {
    var menu = item.querySelector("details[open]");
    if (menu) { menu.open = false; }
    request(url).then(function (result) {
      var old = item.querySelector("form.tforward");
      if (old) { old.remove(); }
      var template = document.createElement("template");
      template.innerHTML = result.body;
      item.appendChild(template.content);
      var select = item.querySelector("form.tforward select");
      if (select) { select.focus(); }
    }).catch(function (error) { say(root, error.message, true); });
  }

  function copyText(root, item) {
    var text = item.querySelector("[data-text]");
    var menu = item.querySelector("details[open]");
    if (menu) { menu.open = false; }
    if (!text || !navigator.clipboard) { return; }
    navigator.clipboard.writeText(text.textContent).then(function () { say(root, "Copied.", false); });
  }

  // ---- wiring ------------------------------------------------------------------------------------------------

  document.addEventListener("click", function (event) {
    var root = pane();
    var target = event.target;
    if (!root || !target.closest || !root.contains(target)) { return; }
    var form = composerOf(root);
    var item = target.closest("li.tmsg");
    var el;
    if ((el = target.closest("[data-load-older]"))) { event.preventDefault(); loadOlder(root); }
    else if ((el = target.closest("a[data-viewer]"))) {
      var viewer = $(root, "#thread-viewer");
      if (viewer && viewer.showModal) {
        event.preventDefault();
        viewer.querySelector("img").src = el.getAttribute("href");
        viewer.showModal();
      }
    } else if (target.id === "thread-viewer") { target.close(); }
    else if ((el = target.closest("a[data-quote]"))) {
      var original = document.getElementById("tm-" + el.getAttribute("data-quote"));
      if (original) {
        event.preventDefault();
        original.scrollIntoView({ block: "center" });
        original.classList.add("tmsg-flash");
        setTimeout(function () { original.classList.remove("tmsg-flash"); }, 1500);
      }
    } else if ((el = target.closest("[data-reply]")) && form) {
      el.closest("details").open = false;
      startReply(form, el);
    } else if (target.closest("[data-cancel-reply]") && form) { cancelReply(form); }
    else if (target.closest("[data-remove-file]") && form) { clearFile(form); }
    else if ((el = target.closest("[data-emoji-toggle]")) && form) {
      var grid = form.querySelector(".composer-emoji");
      grid.hidden = !grid.hidden;
      el.setAttribute("aria-expanded", String(!grid.hidden));
    } else if ((el = target.closest("[data-emoji]")) && form) {
      insertAtCaret(form.querySelector("textarea"), el.getAttribute("data-emoji"));
    } else if ((el = target.closest(".composer-quick li")) && form) { chooseQuick(form, el); }
    else if (target.closest("[data-copy-text]") && item) { copyText(root, item); }
    else if (target.closest("[data-edit]") && item) { toggleEdit(item, true); }
    else if (target.closest("[data-edit-cancel]") && item) { toggleEdit(item, false); }
    else if ((el = target.closest("[data-forward]")) && item) { openForward(root, item, el.getAttribute("data-forward")); }
    else if (target.closest("[data-forward-cancel]")) { target.closest("form").remove(); }
  });

  document.addEventListener("submit", function (event) {
    var root = pane();
    var form = event.target;
    if (!root || !root.contains(form)) { return; }
    if (form.id === "composer") { event.preventDefault(); send(root, form); }
    else if (form.hasAttribute("data-action")) { event.preventDefault(); act(root, form); }
  });

  document.addEventListener("keydown", function (event) {
    var root = pane();
    var field = event.target;
    if (!root || !field.matches || !field.matches("#composer textarea")) { return; }
    var form = field.form;
    var quick = form.querySelector(".composer-quick");
    var open = !quick.hidden && quick.children.length;
    if (open && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      event.preventDefault();
      moveQuick(form, event.key === "ArrowDown" ? 1 : -1);
    } else if (open && (event.key === "Enter" || event.key === "Tab") && !event.shiftKey) {
      event.preventDefault();
      chooseQuick(form, quick.querySelector("[aria-selected='true']") || quick.firstChild);
    } else if (open && event.key === "Escape") {
      hideQuick(form);
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send(root, form);
    }
  });

  document.addEventListener("input", function (event) {
    var root = pane();
    var field = event.target;
    if (!root || !field.matches || !field.matches("#composer textarea")) { return; }
    if (field.value.trim()) { typing(field.form); }
    lookUpQuick(field.form);
  });

  document.addEventListener("change", function (event) {
    var root = pane();
    var input = event.target;
    if (root && input.matches && input.matches("#composer input[type='file']")) { showFile(root, input.form, input); }
  });

  function start() {
    var root = pane();
    if (!root || root.dataset.started) { return; }
    root.dataset.started = "1";
    toBottom(root);
    // images load after the first layout: keep the view at the newest message while it is there
    root.addEventListener("load", function () { if (root.dataset.pinned !== "no") { toBottom(root); } }, true);
    scroller(root).addEventListener("scroll", function () {
      root.dataset.pinned = atBottom(root) ? "" : "no";
      if (scroller(root).scrollTop < 80) { loadOlder(root); }
    }, { passive: true });
  }

  document.addEventListener("DOMContentLoaded", start);
  document.addEventListener("htmx:afterSettle", start);
  setInterval(poll, POLL_MS);
})();
