// Tollgate admin dashboard behaviour. No dependencies besides htmx, no
// inline scripts (the CSP forbids them), no eval.
//
// Load after htmx and before DOMContentLoaded, e.g. both in <head>:
//   <script src="/static/vendor/htmx.min.js" defer></script>
//   <script src="/static/js/app.js" defer></script>
//
// What it does, all by delegation so swapped-in content just works:
//   - button[data-copy-target="#id"] copies #id's text (or value); the
//     button reads "Copied" and gets data-copy-state="copied" (or "failed").
//   - dialog[data-open] is opened with showModal() on load and after swaps;
//     any [data-close] inside a dialog closes it.
//   - the htmx event showToast, sent by the server as
//     HX-Trigger: {"showToast":{"message":"Key created","level":"ok"}}
//     (level ok|warn|error), shows a toast in #toasts for 4 s; failed htmx
//     requests without their own HX-Trigger get an error toast too.
//   - select[data-period] shows its .period-field's [data-period-custom]
//     input while "custom…" is picked.
//   - select[data-guardrail-type] shows the chosen type's settings
//     ([data-guardrail-fields]) in its form.
//   - keys: "g d" /dashboard, "g k" /keys, "g t" /teams, "/" search.
(function () {
  "use strict";

  var TOAST_MS = 4000;

  // htmx injects an inline <style> for indicators unless told not to; the
  // CSP would block it, and css/app.css carries the same rules. A
  // <meta name="htmx-config"> on the page is merged after this and wins.
  if (window.htmx && htmx.config) {
    htmx.config.includeIndicatorStyles = false;
  }

  // ---- copy to clipboard ----

  function textOf(el) {
    if ("value" in el && typeof el.value === "string" && el.tagName !== "BUTTON") {
      return el.value;
    }
    return el.textContent.trim();
  }

  function legacyCopy(text) {
    var ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.className = "sr-only";
    document.body.appendChild(ta);
    ta.select();
    var ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (e) {
      ok = false;
    }
    ta.remove();
    return ok;
  }

  function selectContents(el) {
    if (typeof el.select === "function") {
      el.select();
      return;
    }
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  function copyFrom(button) {
    var target = document.querySelector(button.getAttribute("data-copy-target"));
    if (!target) {
      return;
    }
    var text = textOf(target);
    if (!button.hasAttribute("data-copy-label")) {
      button.setAttribute("data-copy-label", button.textContent);
    }
    var done = function (ok) {
      button.setAttribute("data-copy-state", ok ? "copied" : "failed");
      button.textContent = ok ? "Copied" : "Press Ctrl+C";
      if (!ok) {
        selectContents(target); // let the user copy it themselves
      }
      clearTimeout(button._copyTimer);
      button._copyTimer = setTimeout(function () {
        button.textContent = button.getAttribute("data-copy-label");
        button.removeAttribute("data-copy-state");
      }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { done(true); },
        function () { done(legacyCopy(text)); }
      );
    } else {
      done(legacyCopy(text));
    }
  }

  // ---- dialogs ----

  function openDialogs(root) {
    if (!root || !root.querySelectorAll) {
      return;
    }
    var dialogs = Array.prototype.slice.call(root.querySelectorAll("dialog[data-open]"));
    if (root.matches && root.matches("dialog[data-open]")) {
      dialogs.unshift(root);
    }
    dialogs.forEach(function (d) {
      if (!d.open && d.isConnected && typeof d.showModal === "function") {
        d.showModal();
      }
    });
  }

  // ---- toasts ----

  function toast(message, level) {
    if (!message) {
      return;
    }
    var box = document.getElementById("toasts");
    if (!box) {
      box = document.createElement("div");
      box.id = "toasts";
      document.body.appendChild(box);
    }
    if (!box.hasAttribute("aria-live")) {
      box.setAttribute("aria-live", "polite");
    }
    level = level === "error" || level === "warn" ? level : "ok";
    var t = document.createElement("div");
    t.className = "toast toast-" + level;
    t.setAttribute("role", level === "error" ? "alert" : "status");
    t.textContent = String(message);
    box.appendChild(t);
    setTimeout(function () { t.remove(); }, TOAST_MS);
  }
  window.tollgateToast = toast; // for other scripts and tests

  document.addEventListener("showToast", function (e) {
    var d = e.detail || {};
    toast(d.message !== undefined ? d.message : d.value, d.level);
  });

  document.addEventListener("htmx:responseError", function (e) {
    var xhr = e.detail && e.detail.xhr;
    if (xhr && !xhr.getResponseHeader("HX-Trigger")) {
      toast("Request failed (" + xhr.status + (xhr.statusText ? " " + xhr.statusText : "") + ")", "error");
    }
  });
  document.addEventListener("htmx:sendError", function () {
    toast("Network error: the server could not be reached", "error");
  });

  // ---- clicks ----

  document.addEventListener("click", function (e) {
    var el = e.target instanceof Element ? e.target : null;
    if (!el) {
      return;
    }
    var copy = el.closest("[data-copy-target]");
    if (copy) {
      e.preventDefault();
      copyFrom(copy);
      return;
    }
    var close = el.closest("[data-close]");
    if (close) {
      var dialog = close.closest("dialog");
      if (dialog) {
        e.preventDefault();
        dialog.close();
      }
    }
  });

  // ---- keyboard ----

  var GO = { d: "/dashboard", k: "/keys", t: "/teams" };
  var pendingG = 0;

  function typing(el) {
    if (!el || !(el instanceof Element)) {
      return false;
    }
    return el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName);
  }

  document.addEventListener("keydown", function (e) {
    if (e.defaultPrevented || e.isComposing || e.ctrlKey || e.metaKey || e.altKey) {
      return;
    }
    if (typing(e.target) || typing(document.activeElement)) {
      return;
    }
    if (document.querySelector("dialog[open]")) {
      return; // a modal has the keyboard
    }
    var now = Date.now();
    if (pendingG && now - pendingG < 1500 && Object.prototype.hasOwnProperty.call(GO, e.key)) {
      pendingG = 0;
      e.preventDefault();
      window.location.assign(GO[e.key]);
      return;
    }
    pendingG = 0;
    if (e.key === "g") {
      pendingG = now;
    } else if (e.key === "/") {
      var search = document.querySelector('input[type="search"]');
      if (search) {
        e.preventDefault();
        search.focus();
        search.select();
      }
    }
  });

  // ---- lifecycle ----

  // htmx:load fires for the body once htmx starts and for every piece of
  // swapped-in content; DOMContentLoaded covers pages without htmx.
  document.addEventListener("htmx:load", function (e) { openDialogs(e.target); });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { openDialogs(document); });
  } else {
    openDialogs(document);
  }
})();

// Type-ahead filter: an input.suggest-filter hides the labels of the
// following .suggest-list that do not contain what was typed.
(function () {
  "use strict";
  document.addEventListener("input", function (ev) {
    var input = ev.target;
    if (!input.classList || !input.classList.contains("suggest-filter")) return;
    var list = input.nextElementSibling;
    if (!list) return;
    var q = input.value.trim().toLowerCase();
    list.querySelectorAll("label").forEach(function (label) {
      label.hidden = q !== "" && label.textContent.toLowerCase().indexOf(q) < 0;
    });
  });
})();

// Budget period: the custom period input (label[data-period-custom]) shows
// while the select[data-period] next to it says "custom…".
(function () {
  "use strict";
  document.addEventListener("change", function (ev) {
    var select = ev.target;
    if (!(select instanceof HTMLSelectElement) || !select.hasAttribute("data-period")) return;
    var group = select.closest(".period-field");
    var custom = group && group.querySelector("[data-period-custom]");
    if (!custom) return;
    custom.hidden = select.value !== "custom";
    if (!custom.hidden) {
      var input = custom.querySelector("input");
      if (input) input.focus();
    }
  });
})();

// Billing sink type: a select[data-sink-type] shows the settings of the
// chosen type (fieldset[data-sink-fields]) in its form, and that type's
// URL placeholder and secret help (option data-url-placeholder,
// data-secret-hint).
(function () {
  "use strict";
  document.addEventListener("change", function (ev) {
    var select = ev.target;
    if (!(select instanceof HTMLSelectElement) || !select.hasAttribute("data-sink-type")) return;
    var form = select.closest("form");
    if (!form) return;
    var type = select.value;
    form.querySelectorAll("fieldset[data-sink-fields]").forEach(function (fs) {
      fs.hidden = fs.getAttribute("data-sink-fields") !== type;
    });
    var option = select.options[select.selectedIndex];
    var url = form.querySelector('input[name="url"]');
    if (url && option) url.placeholder = option.getAttribute("data-url-placeholder") || "";
    var help = form.querySelector("[data-secret-help]");
    if (help && option) help.textContent = option.getAttribute("data-secret-hint") || "";
  });
})();

// Guardrail type: a select[data-guardrail-type] shows the settings of the
// chosen type ([data-guardrail-fields] naming it, space-separated) in its
// form; the other types' fieldsets are hidden and disabled, so they are
// not sent.
(function () {
  "use strict";
  document.addEventListener("change", function (ev) {
    var select = ev.target;
    if (!(select instanceof HTMLSelectElement) || !select.hasAttribute("data-guardrail-type")) return;
    var form = select.closest("form");
    if (!form) return;
    form.querySelectorAll("[data-guardrail-fields]").forEach(function (el) {
      var shown = el.getAttribute("data-guardrail-fields").split(" ").indexOf(select.value) >= 0;
      el.hidden = !shown;
      if (el instanceof HTMLFieldSetElement) el.disabled = !shown;
    });
  });
})();
