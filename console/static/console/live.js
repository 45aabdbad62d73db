/* Live status without reloading.
   Detail pages: [data-live-url] is polled every 1.5 s while the resource is unfinished; the badge,
   counters, progress bar and timeline are updated in place, and when it finishes the page's content is
   fetched again and swapped in (output links and previews appear) without a reload.
   List page: [data-live-list-url] is polled with the ids of its unfinished rows; each row is updated. */
(function () {
  "use strict";
  var TERMINAL = ["ACTIVE", "CREATE FAILED", "CREATE STOPPED"];
  var ICONS = {"CREATE PENDING": "\u25cb", "CREATE IN_PROGRESS": "\u25d4", "ACTIVE": "\u2714", "CREATE FAILED": "\u2716",
               "CREATE STOPPING": "\u25a3", "CREATE STOPPED": "\u25a0"};
  var INTERVAL_MS = 1500;

  function badge(status, label) {
    var outer = document.createElement("span");
    outer.className = "badge status-" + status.toLowerCase().replace(/[ _]/g, "-");
    outer.setAttribute("data-status", status);
    var icon = document.createElement("span");
    icon.className = "badge-icon";
    icon.setAttribute("aria-hidden", "true");
    icon.textContent = ICONS[status] || "\u2022";
    outer.appendChild(icon);
    outer.appendChild(document.createTextNode(" " + label));
    return outer;
  }

  function timeNode(iso) {
    var node = document.createElement("time");
    node.setAttribute("datetime", iso);
    var d = new Date(iso);
    var utc = isNaN(d.getTime()) ? iso : d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
    node.setAttribute("title", utc);
    node.setAttribute("data-local-time", "long");
    node.textContent = utc;
    if (window.consoleLocalTime) { window.consoleLocalTime(node); }
    return node;
  }

  function find(root, name) { return root.querySelector('[data-live="' + name + '"]'); }

  function setText(root, name, value) {
    var node = find(root, name);
    if (node && value !== undefined && value !== null) { node.textContent = String(value); }
  }

  function renderProgress(root, p) {
    if (!p) { return; }
    var bar = find(root, "progress_bar");
    if (bar) {
      var fill = bar.firstElementChild;
      if (p.determinate) {
        bar.setAttribute("aria-valuenow", String(p.percent));
        if (fill) { fill.style.width = p.percent + "%"; fill.classList.remove("is-indeterminate"); }
      } else {
        bar.removeAttribute("aria-valuenow");
        if (fill) { fill.style.width = "100%"; fill.classList.add("is-indeterminate"); }
      }
      bar.setAttribute("aria-valuetext", p.label);
    }
    setText(root, "progress_label", p.label);
    if (p.kind === "lines") {
      setText(root, "lines_done", p.lines_done);
      setText(root, "lines_failed", p.lines_failed);
      var failed = find(root, "lines_failed");
      if (failed) { failed.classList.toggle("text-error", p.lines_failed > 0); }
      var list = root.hasAttribute("data-job-id");
      setText(root, "rate", p.lines_per_second ? (list ? " \u00b7 " : "") + p.lines_per_second + " lines/s" : (list ? "" : "-"));
      setText(root, "time_left", p.time_left ? (list ? " \u00b7 " + p.time_left : p.time_left) : (list ? "" : "-"));
    }
    setText(root, "elapsed", p.elapsed || "-");
  }

  function renderCommon(root, data) {
    var holder = find(root, "badge");
    if (holder) { holder.replaceChildren(badge(data.status, data.status_label)); }
    var updated = find(root, "last_updated");
    if (updated && data.last_updated) { updated.replaceChildren(timeNode(data.last_updated)); }
    renderProgress(root, data.progress);
  }

  function render(root, data) {
    renderCommon(root, data);
    setText(root, "records_imported", data.records_imported);
    if (data.training_hours !== undefined && data.training_hours !== null) {
      setText(root, "training_hours", Number(data.training_hours).toFixed(4));
    }
    var banner = find(root, "failure_banner");
    if (banner) {
      banner.hidden = !data.failure_reason;
      setText(root, "failure_reason", data.failure_reason);
    }
    var timeline = find(root, "timeline");
    if (timeline && data.transitions) {
      var items = data.transitions.map(function (t) {
        var li = document.createElement("li");
        li.appendChild(badge(t.status, t.status_label));
        li.appendChild(document.createTextNode(" "));
        li.appendChild(timeNode(t.at));
        if (t.message) {
          var msg = document.createElement("span");
          msg.className = "timeline-message";
          msg.textContent = t.message;
          li.appendChild(document.createTextNode(" "));
          li.appendChild(msg);
        }
        return li;
      });
      timeline.replaceChildren.apply(timeline, items);
    }
  }

  function getJSON(url) {
    return fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin", cache: "no-store"})
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      });
  }

  // A finished resource: fetch the page again and swap in its content, so outputs, previews and
  // errors appear; the browser does not reload (focus, scroll and any typed state survive).
  function refreshContent(root) {
    return fetch(window.location.href, {credentials: "same-origin", cache: "no-store"})
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("[data-live-url]");
        if (fresh) {
          root.replaceChildren.apply(root, Array.prototype.slice.call(fresh.childNodes));
          root.setAttribute("data-status", fresh.getAttribute("data-status") || "");
          if (window.consoleLocalTimes) { window.consoleLocalTimes(root); }
        }
      })
      .catch(function () {});
  }

  function watch(root) {
    var url = root.getAttribute("data-live-url");
    if (TERMINAL.indexOf(root.getAttribute("data-status")) !== -1) { return; }
    function poll() {
      getJSON(url)
        .then(function (data) {
          render(root, data);
          if (TERMINAL.indexOf(data.status) !== -1) { refreshContent(root); return; }
          window.setTimeout(poll, INTERVAL_MS);
        })
        .catch(function () { window.setTimeout(poll, INTERVAL_MS * 4); });
    }
    window.setTimeout(poll, INTERVAL_MS);
  }

  function watchList(panel) {
    var base = panel.getAttribute("data-live-list-url");
    var ids = (panel.getAttribute("data-live-ids") || "").split(",").filter(Boolean);
    if (!ids.length) { return; }
    function poll() {
      getJSON(base + "?ids=" + encodeURIComponent(ids.join(",")))
        .then(function (data) {
          data.jobs.forEach(function (job) {
            var row = panel.querySelector('tr[data-job-id="' + job.id + '"]');
            if (!row) { return; }
            renderCommon(row, job);
            if (job.is_terminal) {
              ids = ids.filter(function (id) { return id !== String(job.id); });
            }
          });
          if (ids.length) { window.setTimeout(poll, INTERVAL_MS); }
        })
        .catch(function () { window.setTimeout(poll, INTERVAL_MS * 4); });
    }
    window.setTimeout(poll, INTERVAL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-url]").forEach(watch);
    document.querySelectorAll("[data-live-list-url]").forEach(watchList);
  });
})();
