// advbench site: sortable and filterable tables. Vanilla JS, no dependencies, works from file://.
// A header click sorts by that column (numbers by their data-value, text otherwise), a second click reverses;
// typing in a table's filter box hides the rows that do not contain the text (case-insensitive).
(function () {
  "use strict";

  function cellKey(row, index) {
    var cell = row.cells[index];
    if (!cell) return { num: true, value: -Infinity };
    var raw = cell.getAttribute("data-value");
    if (raw !== null && raw !== "") {
      var num = parseFloat(raw);
      if (!isNaN(num)) return { num: true, value: num };
    }
    return { num: false, value: cell.textContent.trim().toLowerCase() };
  }

  function compare(a, b) {
    if (a.num && b.num) return a.value - b.value;
    if (a.num !== b.num) return a.num ? -1 : 1; // numbers before text ("-" for a missing value)
    return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
  }

  function sortBy(table, header, index) {
    var body = table.tBodies[0];
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var order = compare(cellKey(r1, index), cellKey(r2, index));
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  function makeSortable(table) {
    if (!table.tHead || !table.tBodies.length) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.tabIndex = 0;
      th.title = "sort by this column";
      th.addEventListener("click", function () { sortBy(table, th, index); });
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(table, th, index); }
      });
    });
  }

  function makeFilter(input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    if (!table) return;
    input.addEventListener("input", function () {
      var query = input.value.trim().toLowerCase();
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        row.hidden = query !== "" && row.textContent.toLowerCase().indexOf(query) === -1;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), makeSortable);
    Array.prototype.forEach.call(document.querySelectorAll("input.filter"), makeFilter);
  });
})();
