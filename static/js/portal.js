// Small behaviours the CSP allows (no inline scripts): copy buttons, countdowns, counters. Nothing submits a
// form on its own: changing a field never changes the page (WCAG 3.2.2).

// The words scripts show, in the page's language (base.html: <meta name="portal-words">); %(name)s filled in.
var portalWords = null;
function portalWord(key, values) {
  if (portalWords === null) {
    var meta = document.querySelector('meta[name="portal-words"]');
    try { portalWords = meta ? JSON.parse(meta.getAttribute("content")) : {}; } catch (e) { portalWords = {}; }
  }
  var text = portalWords[key] || key;
  return text.replace(/%\((\w+)\)s/g, function (all, name) { return values && name in values ? values[name] : all; });
}
function portalNumber(n) { return n.toLocaleString(document.documentElement.lang || "en"); }
document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest("[data-copy]") : null;
  if (!button) { return; }
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (source && navigator.clipboard) {
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      button.textContent = portalWord("copied");
    });
  }
});

// ---- Sessions: the QR code's remaining lifetime counts down between refreshes ----
setInterval(function () {
  var nodes = document.querySelectorAll("[data-countdown]");
  for (var i = 0; i < nodes.length; i++) {
    var left = parseInt(nodes[i].getAttribute("data-countdown"), 10);
    if (isNaN(left) || left <= 0) { continue; }
    left -= 1;
    nodes[i].setAttribute("data-countdown", String(left));
    nodes[i].textContent = String(left);
  }
}, 1000);

// ---- Forms swapped in by htmx: move focus to the first problem so keyboard and screen reader users hear it ----
document.addEventListener("htmx:afterSwap", function (event) {
  var root = event.detail && event.detail.elt;
  if (!root || !root.querySelector) { return; }
  var form = root.matches && root.matches("form") ? root : root.querySelector("form");
  if (!form) { return; }
  var invalid = form.querySelector("[aria-invalid='true']");
  var summary = form.querySelector(".form-error");
  if (invalid) { invalid.focus(); }
  else if (summary) { summary.setAttribute("tabindex", "-1"); summary.focus(); }
});

// ---- Text with a limit: a live counter instead of a maxlength that would cut pasted text silently ----
function updateLimit(field) {
  var limit = parseInt(field.getAttribute("data-limit"), 10);
  var counter = document.getElementById(field.id + "-count");
  if (isNaN(limit) || !counter) { return; }
  var left = limit - field.value.length;
  counter.textContent = left >= 0 ? portalWord("charsLeft", {count: portalNumber(left)})
                                  : portalWord("charsOver", {count: portalNumber(-left)});
  counter.classList.toggle("over", left < 0);
}
document.addEventListener("input", function (event) {
  var el = event.target;
  if (el.matches && el.matches("[data-limit]")) { updateLimit(el); }
});
function initLimits(root) {
  var fields = (root || document).querySelectorAll("[data-limit]");
  for (var i = 0; i < fields.length; i++) { updateLimit(fields[i]); }
}
document.addEventListener("DOMContentLoaded", function () { initLimits(document); });
document.addEventListener("htmx:afterSwap", function (event) { initLimits(event.detail && event.detail.elt ? event.detail.elt.parentNode || document : document); });

// ---- One idempotency key per form instance: the page's URL keeps it, so Back and Send again sends once ----
function keepFormKey() {
  var input = document.querySelector("form#send-form input[name='idempotency_key']");
  if (!input || !input.value || !window.history.replaceState) { return; }
  var url = new URL(window.location.href);
  if (url.searchParams.get("form_key") === input.value) { return; }
  url.searchParams.set("form_key", input.value);
  window.history.replaceState(window.history.state, "", url.toString());
}
document.addEventListener("DOMContentLoaded", keepFormKey);
document.addEventListener("htmx:afterSwap", keepFormKey);

// ---- Files over the limit are refused before they are uploaded, with the typed text untouched ----
function fileTooLarge(input) {
  var max = parseInt(input.getAttribute("data-max-bytes"), 10);
  var file = input.files && input.files[0];
  return !isNaN(max) && file && file.size > max;
}
function showFileProblem(input) {
  var id = input.id + "-size-error";
  var note = document.getElementById(id);
  if (fileTooLarge(input)) {
    if (!note) {
      note = document.createElement("p");
      note.id = id;
      note.className = "error";
      note.setAttribute("role", "alert");
      input.insertAdjacentElement("afterend", note);
    }
    note.textContent = input.getAttribute("data-too-large");
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", id);
    return true;
  }
  if (note) { note.remove(); }
  input.removeAttribute("aria-invalid");
  return false;
}
document.addEventListener("change", function (event) {
  var el = event.target;
  if (el.matches && el.matches("input[type=file][data-max-bytes]")) { showFileProblem(el); }
});
function refuseLargeFiles(event) {
  var form = event.target;
  if (!form || !form.querySelectorAll) { return; }
  var inputs = form.querySelectorAll("input[type=file][data-max-bytes]");
  for (var i = 0; i < inputs.length; i++) {
    if (showFileProblem(inputs[i])) { event.preventDefault(); inputs[i].focus(); return; }
  }
}
document.addEventListener("submit", refuseLargeFiles, true);
document.addEventListener("htmx:confirm", function (event) {
  var form = event.detail && event.detail.elt;
  if (form && form.matches && form.matches("form")) {
    var inputs = form.querySelectorAll("input[type=file][data-max-bytes]");
    for (var i = 0; i < inputs.length; i++) {
      if (showFileProblem(inputs[i])) { event.preventDefault(); inputs[i].focus(); return; }
    }
  }
});

// ---- The header: its height for layouts that fill the rest of the screen (the inbox on a phone), and on a phone
// the current section scrolled into its sideways line ----
(function () {
  var header = document.querySelector("header.topbar");
  if (!header) { return; }
  function note() { document.documentElement.style.setProperty("--topbar-height", header.offsetHeight + "px"); }
  note();
  if (window.ResizeObserver) { new ResizeObserver(note).observe(header); } else { window.addEventListener("resize", note); }
  var current = header.querySelector('.mainnav [aria-current="page"]');
  var nav = current ? current.closest(".mainnav") : null;
  if (nav && nav.scrollWidth > nav.clientWidth) {
    nav.scrollLeft = current.offsetLeft - nav.offsetLeft - (nav.clientWidth - current.offsetWidth) / 2;
  }
})();
