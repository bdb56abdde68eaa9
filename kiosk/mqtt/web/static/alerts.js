// The alerts page: rows appear and go as alerts are raised and acknowledged (live.js
// dispatches the events); Acknowledge posts with the page's CSRF token, no reload.
(function () {
  "use strict";
  const body = document.querySelector("#open-alerts tbody");
  const none = body.querySelector(".none-open");
  const done = document.querySelector("#done-alerts tbody");
  function rowOf(a) { return body.querySelector('[data-alert="' + CSS.escape(a.device + "/" + a.id) + '"]'); }
  function cell(text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; return td; }
  function refresh() { none.hidden = body.querySelectorAll("tr[data-alert]").length > 0; }
  function wire(form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      fetch(form.action, { method: "POST", credentials: "same-origin",
        headers: { "X-CSRF-Token": window.kioskLive.csrf } });
    });
  }
  body.querySelectorAll("form.ack-form").forEach(wire);
  document.addEventListener("kiosk:alert", function (e) {
    const a = e.detail;
    if (rowOf(a)) return;
    const tr = document.createElement("tr");
    tr.dataset.alert = a.device + "/" + a.id;
    tr.className = "kind-" + a.kind + " flash";
    tr.append(cell(a.raised_at.slice(11, 19)), cell(a.device), cell(a.label, "kind"), cell(a.text));
    const td = document.createElement("td");
    const form = document.createElement("form");
    form.method = "post"; form.className = "ack-form";
    form.action = "/alerts/" + encodeURIComponent(a.device) + "/" + encodeURIComponent(a.id) + "/ack";
    const button = document.createElement("button"); button.className = "ack"; button.textContent = "Acknowledge";
    form.appendChild(button); td.appendChild(form); tr.appendChild(td);
    wire(form);
    body.insertBefore(tr, body.firstChild);
    refresh();
  });
  document.addEventListener("kiosk:alert-cleared", function (e) {
    const a = e.detail;
    const tr = rowOf(a);
    if (!tr) return;
    tr.remove();
    const form = tr.querySelector("td:last-child");
    form.textContent = (a.acked_at || "").slice(11, 19) + " by " + a.acked_by;
    tr.className = "acked";
    done.insertBefore(tr, done.firstChild);
    refresh();
  });
})();
