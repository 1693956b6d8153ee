// Polls the console's counters and works out validations per second from two
// readings. Served from 'self'; the page allows no other script.
"use strict";
(function () {
  const box = document.getElementById("counters");
  if (!box) return;
  const note = document.getElementById("counters-note");
  const cell = (name) => box.querySelector('[data-counter="' + name + '"]');
  let last = null;
  let timer = null;

  function show(name, text) {
    const el = cell(name);
    if (el) el.textContent = text;
  }

  async function tick() {
    let res;
    try {
      res = await fetch(box.dataset.src, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "application/json" } });
    } catch (e) {
      if (note) note.textContent = "The node cannot be reached; retrying.";
      return;
    }
    if (res.status === 401) {
      clearInterval(timer);
      if (note) note.textContent = "Your console session has ended. Reload the page to sign in again.";
      return;
    }
    if (!res.ok) return;
    const s = await res.json();
    show("cache_entries", String(s.cache_entries));
    show("revoked", String(s.revoked));
    show("hit_rate", s.cache_hit_rate < 0 ? "\u2013" : (s.cache_hit_rate * 100).toFixed(1) + " %");
    if (last && s.at_ms > last.at_ms) {
      const rate = (s.validations - last.validations) / ((s.at_ms - last.at_ms) / 1000);
      show("rate", rate.toFixed(1));
    }
    last = s;
    box.dataset.live = "true";
    if (note) note.textContent = "Refreshed every two seconds.";
  }

  tick();
  timer = setInterval(tick, 2000);
})();
