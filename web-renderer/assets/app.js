// Platform: the little script the pages use. Every page works without it (forms post
// normally); it adds lines to a table, searches references, and asks before deleting.
(function () {
  "use strict";

  // Lines: "Add line" clones the row template with a fresh index; "×" removes a row.
  document.addEventListener("click", function (ev) {
    var add = ev.target.closest("[data-add-line]");
    if (add) {
      var box = add.closest("[data-lines]");
      var tpl = box.querySelector("template[data-line-template]");
      var body = box.querySelector("[data-lines-body]");
      var index = parseInt(add.getAttribute("data-next-index") || "0", 10);
      add.setAttribute("data-next-index", String(index + 1));
      var html = tpl.innerHTML.split("__INDEX__").join(String(index));
      body.insertAdjacentHTML("beforeend", html);
      var row = body.lastElementChild;
      var first = row && row.querySelector("input:not([type=hidden]), select, textarea");
      if (first) first.focus();
      return;
    }
    var remove = ev.target.closest("[data-remove-line]");
    if (remove) {
      var tr = remove.closest("tr");
      var next = tr.nextElementSibling || tr.previousElementSibling;
      var lines = tr.closest("[data-lines]");
      tr.remove();
      var target = next ? next.querySelector("[data-remove-line]") : lines.querySelector("[data-add-line]");
      if (target) target.focus();
    }
  });

  // Forms that change nothing until confirmed (delete).
  document.addEventListener("submit", function (ev) {
    var msg = ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });

  // A select that navigates (the admin page's object switcher).
  document.addEventListener("change", function (ev) {
    if (ev.target.matches("[data-navigate]")) window.location.href = ev.target.value;
    if (ev.target.matches("[data-filter-field]")) limitOps(ev.target);
  });

  // The filter form offers only the conditions the chosen field takes.
  function limitOps(fieldSelect) {
    var form = fieldSelect.closest("form");
    var opt = fieldSelect.options[fieldSelect.selectedIndex];
    var ops = (opt && opt.getAttribute("data-ops") || "").split(",");
    var opSelect = form.querySelector("[data-filter-op]");
    var firstAllowed = null;
    Array.prototype.forEach.call(opSelect.options, function (o) {
      var ok = ops.indexOf(o.value) >= 0;
      o.hidden = !ok;
      o.disabled = !ok;
      if (ok && firstAllowed === null) firstAllowed = o.value;
    });
    if (opSelect.selectedOptions[0] && opSelect.selectedOptions[0].disabled && firstAllowed) opSelect.value = firstAllowed;
    // A picklist's values are offered as suggestions for the value box.
    var list = form.querySelector("datalist");
    if (list) {
      list.innerHTML = "";
      (opt && opt.getAttribute("data-values") || "").split(",").filter(Boolean).forEach(function (v) {
        var o = document.createElement("option");
        o.value = v;
        list.appendChild(o);
      });
    }
  }
  document.querySelectorAll("[data-filter-field]").forEach(limitOps);

  // Reference search: a combobox over /app/o/{target}/lookup?q=.
  var timers = new WeakMap();
  function listFor(input) { return document.getElementById(input.getAttribute("aria-controls")); }
  function close(input) {
    var list = listFor(input);
    list.hidden = true;
    list.innerHTML = "";
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  }
  function choose(input, li) {
    var box = input.closest("[data-lookup]");
    var hidden = box.querySelector("[data-lookup-value]");
    hidden.value = li.getAttribute("data-id");
    input.value = li.getAttribute("data-title");
    close(input);
    // In a line, inputs named like fields of the chosen record (a product's unit,
    // price, tax rate) take its values, unless the user has already changed them.
    var row = input.closest("tr[data-line-row]");
    if (!row) return;
    var prefix = hidden.name.slice(0, hidden.name.lastIndexOf(".") + 1);
    var values = JSON.parse(li.getAttribute("data-values") || "{}");
    Object.keys(values).forEach(function (k) {
      var el = row.querySelector('[name="' + prefix + k + '"]:not([type=hidden])');
      if (!el || el === input) return;
      var untouched = el.tagName === "SELECT"
        ? Array.prototype.every.call(el.options, function (o) { return o.selected === o.defaultSelected; })
        : el.value === el.defaultValue;
      if (el.type === "checkbox") {
        if (el.checked === el.defaultChecked) el.checked = values[k] === true;
      } else if (untouched || el.value === "") {
        el.value = String(values[k]);
      }
    });
  }
  function search(input) {
    var box = input.closest("[data-lookup]");
    var url = box.getAttribute("data-url") + "?q=" + encodeURIComponent(input.value.trim());
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (items) {
        var list = listFor(input);
        list.innerHTML = "";
        if (!items.length) {
          var none = document.createElement("li");
          none.className = "none";
          none.textContent = "No matches";
          list.appendChild(none);
        }
        items.forEach(function (it, i) {
          var li = document.createElement("li");
          li.id = input.id + "-opt-" + i;
          li.setAttribute("role", "option");
          li.setAttribute("data-id", it.id);
          li.setAttribute("data-title", it.title);
          li.setAttribute("data-values", JSON.stringify(it.values || {}));
          li.textContent = it.title;
          if (it.detail) {
            var small = document.createElement("span");
            small.className = "muted small";
            small.textContent = "  " + it.detail;
            li.appendChild(small);
          }
          list.appendChild(li);
        });
        list.hidden = false;
        input.setAttribute("aria-expanded", "true");
      })
      .catch(function () { close(input); });
  }
  document.addEventListener("input", function (ev) {
    var input = ev.target;
    if (!input.matches("[data-lookup-input]")) return;
    var box = input.closest("[data-lookup]");
    box.querySelector("[data-lookup-value]").value = "";
    clearTimeout(timers.get(input));
    timers.set(input, setTimeout(function () { search(input); }, 200));
  });
  document.addEventListener("focusin", function (ev) {
    if (ev.target.matches("[data-lookup-input]") && !ev.target.value) search(ev.target);
  });
  document.addEventListener("keydown", function (ev) {
    var input = ev.target;
    if (!input.matches("[data-lookup-input]")) return;
    var list = listFor(input);
    var opts = Array.prototype.slice.call(list.querySelectorAll("[role=option]"));
    var cur = opts.findIndex(function (o) { return o.getAttribute("aria-selected") === "true"; });
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      if (list.hidden) { search(input); return; }
      if (!opts.length) return;
      var next = ev.key === "ArrowDown" ? Math.min(cur + 1, opts.length - 1) : Math.max(cur - 1, 0);
      opts.forEach(function (o) { o.setAttribute("aria-selected", "false"); });
      opts[next].setAttribute("aria-selected", "true");
      opts[next].scrollIntoView({ block: "nearest" });
      input.setAttribute("aria-activedescendant", opts[next].id);
    } else if (ev.key === "Enter" && !list.hidden) {
      ev.preventDefault();
      if (cur >= 0) choose(input, opts[cur]);
      else if (opts.length === 1) choose(input, opts[0]);
    } else if (ev.key === "Escape") {
      close(input);
    }
  });
  document.addEventListener("mousedown", function (ev) {
    var li = ev.target.closest(".lookup-list [role=option]");
    if (li) {
      ev.preventDefault();
      choose(li.closest("[data-lookup]").querySelector("[data-lookup-input]"), li);
    }
  });
  document.addEventListener("focusout", function (ev) {
    if (ev.target.matches("[data-lookup-input]")) {
      var input = ev.target;
      setTimeout(function () { close(input); }, 150);
    }
  });

  // After a refused save, move focus to the summary of problems.
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
})();
