// Rows of an array of objects: "Add row" clones the row template, "Remove row"
// drops one. Without JavaScript the page still shows one empty row to fill in.
(function () {
  "use strict";

  var INDEX = /__index__/g;

  function nextIndex(list, name) {
    var pattern = new RegExp("^" + name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "-(\\d+)-");
    var highest = -1;
    list.querySelectorAll("[name]").forEach(function (input) {
      var match = pattern.exec(input.getAttribute("name"));
      if (match) { highest = Math.max(highest, parseInt(match[1], 10)); }
    });
    return highest + 1;
  }

  function renumber(list, label) {
    list.querySelectorAll(":scope > fieldset.row > legend").forEach(function (legend, i) {
      legend.textContent = label + ": row " + (i + 1);
    });
  }

  function addRemoveButton(row, list, label) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "secondary remove-row";
    button.textContent = "Remove row";
    button.addEventListener("click", function () {
      row.remove();
      renumber(list, label);
    });
    row.appendChild(button);
  }

  function setUp(rows) {
    var name = rows.getAttribute("data-rows");
    var list = rows.querySelector(".row-list");
    var template = rows.querySelector("template");
    var add = rows.querySelector("button.add-row");
    var label = rows.querySelector("legend").firstChild.textContent.trim();
    if (!list || !template || !add) { return; }

    list.querySelectorAll(":scope > fieldset.row").forEach(function (row) {
      addRemoveButton(row, list, label);
    });
    add.hidden = false;
    add.addEventListener("click", function () {
      var index = String(nextIndex(list, name));
      var html = template.innerHTML.replace(INDEX, index);
      var holder = document.createElement("div");
      holder.innerHTML = html;
      var row = holder.querySelector("fieldset.row");
      addRemoveButton(row, list, label);
      list.appendChild(row);
      renumber(list, label);
      var first = row.querySelector("input, select, textarea");
      if (first) { first.focus(); }
    });
  }

  document.querySelectorAll("fieldset.rows[data-rows]").forEach(setUp);
}());
