// The leaderboard's only script: sort a table by a column header, filter rows by text. No library, no network.
"use strict";

function sortKey(cell) {
  const raw = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
  const number = parseFloat(raw);
  return { empty: raw === "", number: Number.isNaN(number) ? null : number, text: raw.toLowerCase() };
}

function sortBy(table, index, header) {
  const body = table.tBodies[0];
  const descending = header.getAttribute("aria-sort") === "ascending";
  for (const th of table.tHead.rows[0].cells) th.removeAttribute("aria-sort");
  header.setAttribute("aria-sort", descending ? "descending" : "ascending");
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = sortKey(a.cells[index]), y = sortKey(b.cells[index]);
    if (x.empty !== y.empty) return x.empty ? 1 : -1; // "not run" stays at the bottom
    let order = x.number !== null && y.number !== null ? x.number - y.number : x.text.localeCompare(y.text);
    return descending ? -order : order;
  });
  for (const row of rows) body.appendChild(row);
}

function filterRows(text) {
  const wanted = text.trim().toLowerCase();
  for (const row of document.querySelectorAll("table.sortable tbody tr")) {
    row.hidden = wanted !== "" && !row.textContent.toLowerCase().includes(wanted);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("table.sortable")) {
    Array.from(table.tHead.rows[0].cells).forEach((header, index) => {
      header.tabIndex = 0;
      header.title = "sort by this column (click again to reverse)";
      header.addEventListener("click", () => sortBy(table, index, header));
      header.addEventListener("keydown", (event) => {
        if (event.key === "Enter") sortBy(table, index, header);
      });
    });
  }
  const filter = document.getElementById("filter");
  if (filter) filter.addEventListener("input", () => filterRows(filter.value));
});
