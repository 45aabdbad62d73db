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

  document.addEventListener("DOMContentLoaded", function () {
    batchJobForm();
    solutionForm();
    datasetForm();
  });
})();
