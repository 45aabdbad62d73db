/* Live status for a detail page: polls the JSON status endpoint named by [data-live-url] every 1.5 s
   while the resource is not finished, updates the badge, counters and timeline, then reloads the page
   once when it finishes so output links and previews appear. */
(function () {
  "use strict";
  var TERMINAL = ["ACTIVE", "CREATE FAILED"];
  var ICONS = {"CREATE PENDING": "\u25cb", "CREATE IN_PROGRESS": "\u25d4", "ACTIVE": "\u2714", "CREATE FAILED": "\u2716"};
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

  function stamp(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return iso; }
    return d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }

  function setText(root, name, value) {
    var node = root.querySelector('[data-live="' + name + '"]');
    if (node && value !== undefined && value !== null) { node.textContent = String(value); }
  }

  function render(root, data) {
    var holder = root.querySelector('[data-live="badge"]');
    if (holder) { holder.replaceChildren(badge(data.status, data.status_label)); }
    setText(root, "lines_done", data.lines_done);
    setText(root, "lines_failed", data.lines_failed);
    setText(root, "records_imported", data.records_imported);
    if (data.training_hours !== undefined && data.training_hours !== null) {
      setText(root, "training_hours", Number(data.training_hours).toFixed(4));
    }
    setText(root, "last_updated", stamp(data.last_updated));
    var banner = root.querySelector('[data-live="failure_banner"]');
    if (banner) {
      banner.hidden = !data.failure_reason;
      setText(root, "failure_reason", data.failure_reason);
    }
    var timeline = root.querySelector('[data-live="timeline"]');
    if (timeline && data.transitions) {
      var items = data.transitions.map(function (t) {
        var li = document.createElement("li");
        li.appendChild(badge(t.status, t.status_label));
        var time = document.createElement("time");
        time.setAttribute("datetime", t.at);
        time.textContent = stamp(t.at);
        li.appendChild(document.createTextNode(" "));
        li.appendChild(time);
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

  function watch(root) {
    var url = root.getAttribute("data-live-url");
    if (TERMINAL.indexOf(root.getAttribute("data-status")) !== -1) { return; }
    function poll() {
      fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin", cache: "no-store"})
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (data) {
          render(root, data);
          if (TERMINAL.indexOf(data.status) !== -1) {
            window.location.reload();
            return;
          }
          window.setTimeout(poll, INTERVAL_MS);
        })
        .catch(function () { window.setTimeout(poll, INTERVAL_MS * 4); });
    }
    window.setTimeout(poll, INTERVAL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-url]").forEach(watch);
  });
})();
