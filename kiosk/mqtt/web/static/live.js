// Live updates for every page of the web view: one server-sent event stream (/events).
// Pages listen for the DOM events "kiosk:stock", "kiosk:status", "kiosk:alert" and
// "kiosk:alert-cleared" on document; this file keeps the alert banner, the badge and
// the sound for all pages.
(function () {
  "use strict";
  const csrf = document.body.dataset.csrf;
  const banner = document.getElementById("alert-banner");
  const badge = document.getElementById("alert-count");
  const liveState = document.getElementById("live-state");
  const soundButton = document.getElementById("sound-toggle");
  const open = new Map(); // alert key -> alert
  let sound = localStorage.getItem("kiosk-sound") !== "off";
  const chime = new Audio("/static/chime.wav");
  window.kioskLive = { csrf: csrf, open: open, played: 0 };

  function showSound() {
    if (soundButton) soundButton.textContent = sound ? "Sound on" : "Sound off";
  }
  if (soundButton) {
    soundButton.addEventListener("click", function () {
      sound = !sound;
      localStorage.setItem("kiosk-sound", sound ? "on" : "off");
      showSound();
      if (sound) chime.play().catch(function () {});
    });
  }
  showSound();

  function ring() {
    if (!sound) return;
    chime.currentTime = 0;
    chime.play().then(function () { window.kioskLive.played += 1; }).catch(function () {
      if (soundButton) soundButton.textContent = "Sound blocked: click";
    });
  }

  function key(a) { return a.device + "/" + a.id; }

  function redraw() {
    const list = Array.from(open.values()).sort(function (a, b) {
      return a.raised_at < b.raised_at ? 1 : -1;
    });
    if (badge) {
      badge.textContent = String(list.length);
      badge.hidden = list.length === 0;
    }
    if (!banner) return;
    if (list.length === 0) { banner.hidden = true; banner.textContent = ""; return; }
    banner.hidden = false;
    banner.textContent = "";
    list.slice(0, 3).forEach(function (a) {
      const item = document.createElement("a");
      item.href = "/alerts";
      item.className = "banner-item kind-" + a.kind;
      item.textContent = a.device + ": " + a.label + (a.text ? " — " + a.text : "");
      banner.appendChild(item);
    });
    if (list.length > 3) {
      const more = document.createElement("span");
      more.textContent = " +" + (list.length - 3) + " more";
      banner.appendChild(more);
    }
  }

  function emit(name, detail) {
    document.dispatchEvent(new CustomEvent(name, { detail: detail }));
  }

  fetch("/alerts/open.json", { credentials: "same-origin" })
    .then(function (r) { return r.ok ? r.json() : []; })
    .then(function (alerts) { alerts.forEach(function (a) { open.set(key(a), a); }); redraw(); })
    .catch(function () {});

  function connect() {
    const source = new EventSource("/events");
    source.onopen = function () { if (liveState) liveState.className = "live on"; };
    source.onerror = function () { if (liveState) liveState.className = "live off"; };
    source.addEventListener("stock", function (e) {
      const level = JSON.parse(e.data);
      document.querySelectorAll('[data-sku="' + CSS.escape(level.sku) + '"] .on-hand')
        .forEach(function (cell) {
          cell.textContent = String(level.on_hand);
          const row = cell.closest("tr");
          if (row) { row.classList.remove("flash"); void row.offsetWidth; row.classList.add("flash"); }
        });
      emit("kiosk:stock", level);
    });
    source.addEventListener("status", function (e) { emit("kiosk:status", JSON.parse(e.data)); });
    source.addEventListener("alert", function (e) {
      const a = JSON.parse(e.data);
      const fresh = !open.has(key(a));
      open.set(key(a), a);
      redraw();
      if (fresh) ring();
      emit("kiosk:alert", a);
    });
    source.addEventListener("alert-cleared", function (e) {
      const a = JSON.parse(e.data);
      open.delete(key(a));
      redraw();
      emit("kiosk:alert-cleared", a);
    });
    source.addEventListener("resync", function () { location.reload(); });
  }
  connect();
})();
