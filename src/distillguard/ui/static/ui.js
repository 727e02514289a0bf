// The dashboard's only script: filter boxes over account tables, and a confirmation before a
// decision that covers a whole campaign. Pages work without it (forms post as they are).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  for (const box of document.querySelectorAll("input.filter")) {
    const table = box.closest("h2")?.nextElementSibling;
    if (!table || !table.matches("table[data-filterable]")) continue;
    box.addEventListener("input", () => {
      const q = box.value.trim().toLowerCase();
      for (const row of table.tBodies[0].rows) {
        row.hidden = q !== "" && !row.textContent.toLowerCase().includes(q);
      }
    });
  }
  for (const form of document.querySelectorAll("form.decide")) {
    form.addEventListener("submit", (event) => {
      const action = event.submitter ? event.submitter.value : "this";
      const size = Number(form.dataset.size || "1");
      if (form.dataset.scope === "campaign" && action !== "appeal" &&
          !window.confirm(`${action} all ${size} accounts of this campaign?`)) {
        event.preventDefault();
        return;
      }
      for (const b of form.querySelectorAll("button")) b.disabled = true; // one decision per click
      // a disabled submitter is not sent: carry its action in a hidden field
      const field = document.createElement("input");
      field.type = "hidden";
      field.name = "action";
      field.value = action;
      form.appendChild(field);
    });
  }
});
