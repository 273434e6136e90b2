// Draws an instance's BPMN with bpmn-js and marks each element by its state.
// The data comes from the page's <script type="application/json" id="diagram-data">.
(function () {
  "use strict";

  var STATES = ["completed", "waiting", "active", "error"];

  function mark(viewer, data) {
    var canvas = viewer.get("canvas");
    var registry = viewer.get("elementRegistry");
    STATES.forEach(function (state) {
      (data[state] || []).forEach(function (id) {
        // A call activity's inner elements are not in this diagram.
        if (registry.get(id)) {
          canvas.addMarker(id, "state-" + state);
        }
      });
    });
  }

  function render(container, data) {
    container.replaceChildren();
    var viewer = new window.BpmnJS({ container: container });
    return viewer.importXML(data.xml).then(function () {
      viewer.get("canvas").zoom("fit-viewport", "auto");
      mark(viewer, data);
      STATES.forEach(function (state) {
        container.dataset[state] = (data[state] || []).join(" ");
      });
      container.dataset.rendered = "true";
    });
  }

  function fail(container) {
    var note = document.createElement("p");
    note.className = "diagram-fallback";
    note.textContent = "The diagram could not be drawn; the tables below say the same in words.";
    container.replaceChildren(note);
    container.dataset.rendered = "failed";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var container = document.getElementById("diagram");
    var source = document.getElementById("diagram-data");
    if (!container || !source) {
      return;
    }
    if (!window.BpmnJS) {
      fail(container);
      return;
    }
    render(container, JSON.parse(source.textContent)).catch(function () {
      fail(container);
    });
  });
})();
