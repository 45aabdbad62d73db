/* Small form behaviours for the console; every form still works without them. */
(function () {
  "use strict";

  // Create batch inference job: offer only the chosen solution's versions, and show the
  // exploration fields only for a User-Personalization solution.
  function batchJobForm() {
    var solution = document.getElementById("id_solution");
    var version = document.getElementById("id_solution_version");
    var exploration = document.getElementById("exploration-config");
    if (!solution || !version) { return; }
    var allowed = exploration ? (exploration.getAttribute("data-exploration-solutions") || "").split(",") : [];
    function update() {
      var chosen = solution.value;
      Array.prototype.forEach.call(version.options, function (option) {
        var owner = option.getAttribute("data-solution");
        if (owner === null) { return; }
        var show = owner === chosen;
        option.hidden = !show;
        option.disabled = !show;
        if (!show && option.selected) { version.value = ""; }
      });
      if (exploration) { exploration.hidden = allowed.indexOf(chosen) === -1; }
    }
    solution.addEventListener("change", update);
    update();
  }

  // Batch job forms: under the Filter select, list the chosen filter's placeholders (data-placeholders).
  function filterHint() {
    var select = document.getElementById("id_filter");
    var hint = document.getElementById("filter-placeholders");
    if (!select || !hint) { return; }
    var names = hint.querySelector("[data-filter-placeholders]");
    function update() {
      var option = select.options[select.selectedIndex];
      var text = option ? option.getAttribute("data-placeholders") || "" : "";
      names.textContent = text;
      hint.hidden = text === "";
    }
    select.addEventListener("change", update);
    update();
  }

  // Create solution: show the description and hyperparameters of the chosen recipe only.
  function solutionForm() {
    var recipe = document.getElementById("id_recipe");
    if (!recipe) { return; }
    function update() {
      document.querySelectorAll("[data-recipe]").forEach(function (node) {
        node.hidden = node.getAttribute("data-recipe") !== recipe.value;
      });
    }
    recipe.addEventListener("change", update);
    update();
  }

  // Create dataset: existing or new schema; a new schema starts from the standard one for the type.
  function datasetForm() {
    var type = document.getElementById("id_dataset_type");
    var text = document.getElementById("id_schema_json");
    if (!type || !text) { return; }
    var modes = document.querySelectorAll("input[name=schema_mode]");
    function standard(kind) {
      var tpl = document.querySelector('template[data-standard-schema="' + kind + '"]');
      return tpl ? tpl.content.textContent : "";
    }
    var lastStandard = standard(type.value);
    type.addEventListener("change", function () {
      // Replace the text only while it is still an untouched standard schema.
      if (text.value.trim() === lastStandard.trim() || text.value.trim() === "") {
        text.value = standard(type.value);
      }
      lastStandard = standard(type.value);
    });
    function updateMode() {
      var mode = document.querySelector("input[name=schema_mode]:checked");
      var value = mode ? mode.value : "new";
      document.querySelectorAll("[data-schema-mode]").forEach(function (node) {
        node.hidden = node.getAttribute("data-schema-mode") !== value;
      });
    }
    modes.forEach(function (m) { m.addEventListener("change", updateMode); });
    updateMode();
  }

  // Times: the server writes UTC; show them in the user's time zone, keeping UTC in the tooltip.
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function localTime(node) {
    var d = new Date(node.getAttribute("datetime"));
    if (isNaN(d.getTime())) { return; }
    var text = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes());
    if (node.getAttribute("data-local-time") === "long") { text += ":" + pad(d.getSeconds()); }
    var offset = -d.getTimezoneOffset();
    var zone = "UTC" + (offset === 0 ? "" : (offset > 0 ? "+" : "-") + pad(Math.floor(Math.abs(offset) / 60)) +
      (Math.abs(offset) % 60 ? ":" + pad(Math.abs(offset) % 60) : ""));
    node.textContent = text + " " + zone;
    if (!node.getAttribute("title")) {
      node.setAttribute("title", d.toISOString().replace("T", " ").slice(0, 19) + " UTC");
    }
  }
  function localTimes(root) {
    (root || document).querySelectorAll("time[data-local-time]").forEach(localTime);
  }
  window.consoleLocalTime = localTime;
  window.consoleLocalTimes = localTimes;

  // The equivalent AWS CLI command and boto3 call, rebuilt from the form as it is filled in. The spec
  // (rendered by the view) maps API members to form fields; the server rendered the first text.
  function shellQuote(value) {
    if (/^[A-Za-z0-9_\-.,:\/@=+%]+$/.test(value)) { return value; }
    return "'" + value.replace(/'/g, "'\"'\"'") + "'";
  }
  function kebab(name) { return name.replace(/([A-Z])/g, "-$1").toLowerCase(); }
  function cliPanel() {
    var specNode = document.getElementById("cli-spec");
    var panel = document.querySelector("[data-cli-form]");
    if (!specNode || !panel) { return; }
    var form = document.getElementById(panel.getAttribute("data-cli-form"));
    if (!form) { return; }
    var spec = JSON.parse(specNode.textContent);
    function fieldValue(name) {
      var el = form.elements.namedItem(name);
      return el ? String(el.value || "").trim() : "";
    }
    function params() {
      var out = {};
      spec.fields.forEach(function (entry) {
        var value;
        if (Object.prototype.hasOwnProperty.call(entry, "const")) {
          value = entry["const"];
        } else {
          if (entry.if_visible) {
            var box = document.getElementById(entry.if_visible);
            if (box && box.hidden) { return; }
          }
          if (entry["if"] && fieldValue(entry["if"][0]) !== entry["if"][1]) { return; }
          value = fieldValue(entry.field);
          if (entry.kind === "bool") {
            // A checkbox: the member is written only when it differs from the API's default.
            var checkbox = form.elements.namedItem(entry.field);
            value = checkbox && checkbox.checked !== entry["default"] ? checkbox.checked : "";
          } else if (entry.map) { value = entry.map[value] || ""; }
          else if (value && entry.prefix) { value = entry.prefix + value; }
          if (entry.kind === "int" && value && /^-?\d+$/.test(value)) { value = parseInt(value, 10); }
        }
        if (value === "" || value === null || value === undefined) { return; }
        var parts = entry.path.split(".");
        var target = out;
        parts.slice(0, -1).forEach(function (part) { target = target[part] = target[part] || {}; });
        target[parts[parts.length - 1]] = value;
      });
      return out;
    }
    function update() {
      var p = params();
      var cli = ["aws personalize " + spec.operation];
      var py = ["import boto3", "", 'personalize = boto3.client("personalize", endpoint_url="' + spec.endpoint +
        '", region_name="' + spec.region + '")',
        "response = personalize." + spec.operation.replace(/-/g, "_") + "("];
      Object.keys(p).forEach(function (key) {
        var v = p[key];
        if (typeof v === "boolean") {
          cli.push("--" + (v ? "" : "no-") + kebab(key));
          py.push("    " + key + "=" + (v ? "True" : "False") + ",");
          return;
        }
        var rendered = typeof v === "object" ? shellQuote(JSON.stringify(v)) : typeof v === "number" ? String(v) : shellQuote(v);
        cli.push("--" + kebab(key) + " " + rendered);
        py.push("    " + key + "=" + JSON.stringify(v).replace(/":/g, '": ').replace(/,"/g, ', "') + ",");
      });
      cli.push("--endpoint-url " + spec.endpoint + " --region " + spec.region);
      py.push(")");
      panel.querySelector('[data-cli="cli"]').textContent = cli.join(" \\\n    ");
      panel.querySelector('[data-cli="boto3"]').textContent = py.join("\n");
    }
    form.addEventListener("input", update);
    form.addEventListener("change", function () { window.setTimeout(update, 0); });
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    batchJobForm();
    filterHint();
    solutionForm();
    datasetForm();
    cliPanel();
  });
})();
