/* The designer page: a bpmn-js modeler, a small properties panel, check and deploy. */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("bpmn-data").textContent);
  var SPIFF = "spiffworkflow:";
  var $ = function (id) { return document.getElementById(id); };
  var modeler, modeling, moddle, canvas, registry, overlays, selection;
  var current = null;
  var marked = [];

  function status(text) { $("designer-status").textContent = text; }

  // ---- reading the business object --------------------------------------

  function extensions(bo) {
    return (bo.extensionElements && bo.extensionElements.get("values")) || [];
  }

  function extension(bo, type) {
    return extensions(bo).find(function (v) { return v.$type === SPIFF + type; });
  }

  function property(bo, name) {
    var list = extension(bo, "Properties");
    var found = list && list.get("properties").find(function (p) { return p.name === name; });
    return found ? found.value || "" : "";
  }

  function laneRole(name) {
    // The same rule as app/services/definitions.py lane_role, shown as a preview;
    // the check on the server is what counts.
    var role = (name || "").trim().toLowerCase().replace(/[^a-z0-9]+/g, "_")
      .replace(/^_+|_+$/g, "");
    return data.roles.indexOf(role) >= 0 ? role : null;
  }

  // ---- writing through modeling, so every change can be undone -----------

  function extensionElements(element) {
    var bo = element.businessObject;
    if (!bo.extensionElements) {
      var created = moddle.create("bpmn:ExtensionElements", { values: [] });
      modeling.updateProperties(element, { extensionElements: created });
    }
    return bo.extensionElements;
  }

  function addExtension(element, type, attrs) {
    var container = extensionElements(element);
    var made = moddle.create(SPIFF + type, attrs);
    made.$parent = container;
    modeling.updateModdleProperties(element, container, {
      values: container.get("values").concat([made])
    });
    return made;
  }

  function removeExtension(element, found) {
    var container = element.businessObject.extensionElements;
    modeling.updateModdleProperties(element, container, {
      values: container.get("values").filter(function (v) { return v !== found; })
    });
  }

  function setProperty(element, name, value) {
    var list = extension(element.businessObject, "Properties");
    if (!list && !value) return;
    if (!list) list = addExtension(element, "Properties", { properties: [] });
    var found = list.get("properties").find(function (p) { return p.name === name; });
    if (found && !value) {
      modeling.updateModdleProperties(element, list, {
        properties: list.get("properties").filter(function (p) { return p !== found; })
      });
    } else if (found) {
      modeling.updateModdleProperties(element, found, { value: value });
    } else if (value) {
      var made = moddle.create(SPIFF + "Property", { name: name, value: value });
      made.$parent = list;
      modeling.updateModdleProperties(element, list, {
        properties: list.get("properties").concat([made])
      });
    }
  }

  function setInstructions(element, text) {
    var found = extension(element.businessObject, "InstructionsForEndUser");
    if (found && !text) removeExtension(element, found);
    else if (found) modeling.updateModdleProperties(element, found, { value: text });
    else if (text) addExtension(element, "InstructionsForEndUser", { value: text });
  }

  function operatorElement(element) {
    var found = extension(element.businessObject, "ServiceTaskOperator");
    if (found) return found;
    var params = moddle.create(SPIFF + "Parameters", { parameters: [] });
    found = addExtension(element, "ServiceTaskOperator", { parameterList: params });
    params.$parent = found;
    return found;
  }

  // Only the attribute changes: the operator's parameters stay as they were.
  function setOperatorAttr(element, attr, value) {
    var found = extension(element.businessObject, "ServiceTaskOperator");
    if (!found && !value) return;
    var change = {};
    change[attr] = value || undefined;
    modeling.updateModdleProperties(element, operatorElement(element), change);
  }

  // ---- the panel ----------------------------------------------------------

  var FIELDS = {
    "prop-name": {
      read: function (bo) { return bo.name || ""; },
      write: function (el, v) { modeling.updateProperties(el, { name: v || undefined }); }
    },
    "prop-form": {
      read: function (bo) { return property(bo, "form"); },
      write: function (el, v) { setProperty(el, "form", v); }
    },
    "prop-purpose": {
      read: function (bo) { return property(bo, "purpose"); },
      write: function (el, v) { setProperty(el, "purpose", v); }
    },
    "prop-instructions": {
      read: function (bo) {
        var found = extension(bo, "InstructionsForEndUser");
        return found ? found.value || "" : "";
      },
      write: setInstructions
    },
    "prop-operator": {
      read: function (bo) {
        var found = extension(bo, "ServiceTaskOperator");
        return found ? found.id || "" : "";
      },
      write: function (el, v) { setOperatorAttr(el, "id", v); }
    },
    "prop-result-variable": {
      read: function (bo) {
        var found = extension(bo, "ServiceTaskOperator");
        return found ? found.resultVariable || "" : "";
      },
      write: function (el, v) { setOperatorAttr(el, "resultVariable", v); }
    }
  };

  function is(element, type) {
    return element.businessObject.$instanceOf("bpmn:" + type);
  }

  function fillOptions(list, names) {
    list.replaceChildren.apply(list, names.map(function (name) {
      var option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      return option;
    }));
  }

  function fillOperators(value) {
    var names = data.operators.slice();
    var select = $("prop-operator");
    fillOptions(select, [""].concat(names));
    select.options[0].textContent = "(choose an operator)";
    if (value && names.indexOf(value) < 0) {
      var unknown = document.createElement("option");
      unknown.value = value;
      unknown.textContent = value + " (not registered)";
      select.appendChild(unknown);
    }
  }

  function show(element) {
    current = element || null;
    var editable = current && current.type !== "label" && current.businessObject;
    $("prop-nothing").hidden = !!editable;
    $("properties-form").hidden = !editable;
    if (!editable) return;

    var bo = current.businessObject;
    $("prop-id").textContent = bo.id;
    $("prop-type").textContent = bo.$type.replace("bpmn:", "");
    $("user-task-fields").hidden = !is(current, "UserTask");
    $("service-task-fields").hidden = !is(current, "ServiceTask");
    $("lane-fields").hidden = !is(current, "Lane");
    if (is(current, "ServiceTask")) fillOperators(FIELDS["prop-operator"].read(bo));
    refresh();
  }

  function refresh() {
    if (!current) return;
    var bo = current.businessObject;
    Object.keys(FIELDS).forEach(function (id) {
      if (document.activeElement !== $(id)) $(id).value = FIELDS[id].read(bo);
    });
    if (is(current, "ServiceTask")) {
      var op = extension(bo, "ServiceTaskOperator");
      var params = op && op.parameterList ? op.parameterList.get("parameters") : [];
      $("prop-parameters").textContent = params.length
        ? "Parameters (kept as they are): " + params.map(function (p) { return p.id; }).join(", ")
        : "No parameters.";
    }
    if (is(current, "Lane")) {
      $("prop-lane-role").textContent = laneRole(bo.name) ||
        "none: this name is not a role, so the process cannot be deployed";
    }
  }

  function apply(id) {
    if (!current) return;
    var field = FIELDS[id];
    var value = $(id).value.trim() === "" ? "" : $(id).value;
    if (value === field.read(current.businessObject)) return;
    field.write(current, value);
  }

  // What is typed in a field counts even if it was never left before a click.
  function applyAll() {
    if (!current || $("properties-form").hidden) return;
    Object.keys(FIELDS).forEach(function (id) {
      if (!$(id).closest("fieldset[hidden]")) apply(id);
    });
  }

  // ---- problems, check and deploy ---------------------------------------

  function clearProblems() {
    marked.forEach(function (id) {
      if (registry.get(id)) canvas.removeMarker(id, "has-problem");
    });
    marked = [];
    overlays.remove({ type: "problem" });
    $("designer-problems").replaceChildren();
    $("deploy-result").hidden = true;
  }

  function showProblems(problems) {
    problems.forEach(function (problem) {
      var item = document.createElement("li");
      var known = problem.element && registry.get(problem.element);
      if (known) {
        var link = document.createElement("button");
        link.type = "button";
        link.className = "problem-element";
        link.dataset.element = problem.element;
        link.textContent = problem.element;
        link.addEventListener("click", function () { focusElement(problem.element); });
        item.appendChild(link);
        item.appendChild(document.createTextNode(" "));
        mark(problem.element);
      } else if (problem.element) {
        item.appendChild(document.createTextNode(problem.element + ": "));
      }
      var text = document.createElement("span");
      text.className = "problem-message";
      text.textContent = problem.message;
      item.appendChild(text);
      $("designer-problems").appendChild(item);
    });
  }

  function mark(id) {
    if (marked.indexOf(id) >= 0) return;
    marked.push(id);
    canvas.addMarker(id, "has-problem");
    var badge = document.createElement("div");
    badge.className = "problem-badge";
    badge.textContent = "!";
    badge.title = "This element has a problem; see the list above the diagram.";
    overlays.add(id, "problem", { position: { top: -10, right: 10 }, html: badge });
  }

  function focusElement(id) {
    var element = registry.get(id);
    if (!element) return;
    selection.select(element);
    canvas.scrollToElement(element);
  }

  async function send(url) {
    applyAll();
    // Unchanged, the diagram goes as it was opened: exporting reformats the XML,
    // which the service would store as a new version of the same process.
    var xml = modeler.get("commandStack").canUndo()
      ? (await modeler.saveXML({ format: true })).xml
      : data.xml;
    var body = new FormData();
    body.append("csrf_token", $("csrf-token").value);
    // As a file: a form field's line breaks would be sent as CRLF, changing the
    // content and so the version the service finds for it.
    body.append("bpmn", new Blob([xml], { type: "application/xml" }), data.filename);
    body.append("filename", data.filename);
    var reply = await fetch(url, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { Accept: "application/json" }
    });
    var type = reply.headers.get("Content-Type") || "";
    if (type.indexOf("json") < 0) {
      return { ok: false, problems: [{ element: null, message:
        "The service refused the request (" + reply.status + "); nothing was " +
        "changed. Reload the page and try again." }] };
    }
    return reply.json();
  }

  function busy(on) {
    $("validate-button").disabled = on;
    $("deploy-button").disabled = on;
  }

  async function run(url, done) {
    busy(true);
    clearProblems();
    $("designer-results").hidden = false;
    $("results-summary").textContent = "Working…";
    try {
      var answer = await send(url);
      if (!answer.ok) {
        $("designer-results").dataset.outcome = "problems";
        $("results-summary").textContent = answer.problems.length === 1
          ? "There is 1 problem; nothing was deployed."
          : "There are " + answer.problems.length + " problems; nothing was deployed.";
        showProblems(answer.problems);
      } else {
        done(answer);
      }
    } catch (error) {
      $("designer-results").dataset.outcome = "error";
      $("results-summary").textContent =
        "The service could not be reached; nothing was changed.";
    } finally {
      busy(false);
    }
  }

  function validated() {
    $("designer-results").dataset.outcome = "valid";
    $("results-summary").textContent =
      "No problems found: this diagram can be deployed. Nothing was stored.";
  }

  function deployed(answer) {
    $("designer-results").dataset.outcome = answer.created ? "deployed" : "unchanged";
    $("results-summary").textContent = answer.created
      ? "The new version is stored."
      : "Nothing new to store.";
    $("deploy-message").textContent = answer.message + " ";
    $("deploy-result").dataset.version = answer.version;
    $("deploy-list-link").href = answer.list_url;
    $("deploy-result").hidden = false;
  }

  // SpiffWorkflow names process variables where BPMN expects references (a
  // multi-instance task's loopDataInputRef holds a variable name). bpmn-js would
  // drop such unresolved references on export; a stand-in keeps the name.
  function keepUnresolvedReferences(warnings) {
    return warnings.filter(function (warning) {
      var owner = warning.element;
      var unresolved = /^unresolved reference/.test(warning.message || "");
      if (!unresolved || !owner || !warning.property || !warning.value) return true;
      var standIn = moddle.create("bpmn:ItemAwareElement", { id: warning.value });
      var many = owner.$descriptor.propertiesByName[warning.property];
      if (many && many.isMany) owner.get(warning.property).push(standIn);
      else owner.set(warning.property, standIn);
      return false;
    });
  }

  // ---- start ---------------------------------------------------------------

  function wirePanel() {
    Object.keys(FIELDS).forEach(function (id) {
      $(id).addEventListener("change", function () { apply(id); });
    });
    $("properties-form").addEventListener("submit", function (event) {
      event.preventDefault();
      applyAll();
    });
    fillOptions($("known-forms"), data.forms);
    fillOptions($("known-purposes"), data.purposes);
  }

  async function start() {
    var descriptor = await (await fetch(data.moddle_url)).json();
    modeler = new window.BpmnJS({
      container: "#designer-canvas",
      moddleExtensions: { spiffworkflow: descriptor }
    });
    modeling = modeler.get("modeling");
    moddle = modeler.get("moddle");
    canvas = modeler.get("canvas");
    registry = modeler.get("elementRegistry");
    overlays = modeler.get("overlays");
    selection = modeler.get("selection");

    var result = await modeler.importXML(data.xml);
    canvas.zoom("fit-viewport");
    wirePanel();
    var bus = modeler.get("eventBus");
    bus.on("selection.changed", function (event) { show(event.newSelection[0]); });
    bus.on("elements.changed", function (event) {
      if (current && event.elements.indexOf(current) >= 0) refresh();
    });
    $("validate-button").addEventListener("click", function () {
      run(data.validate_url, validated);
    });
    $("deploy-button").addEventListener("click", function () {
      run(data.deploy_url, deployed);
    });
    busy(false);
    var warnings = keepUnresolvedReferences(result.warnings).length;
    status(warnings ? "Opened, with " + warnings + " import warnings." : "Opened.");
    $("designer-canvas").dataset.ready = "true";
  }

  start().catch(function (error) {
    status("The diagram could not be opened: " + (error && error.message));
    $("designer-canvas").dataset.ready = "error";
  });
})();
