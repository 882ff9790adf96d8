// Devices pages: presence (and a device's pin values) live from the cloud, by Server-Sent
// Events. Without this script the pages still work; they are current as of their loading.
"use strict";

function setStatus(root, online) {
  for (const badge of root.querySelectorAll("[data-status]")) {
    badge.textContent = online ? "Online" : "Offline";
    badge.classList.toggle("online", online);
    badge.classList.toggle("offline", !online);
  }
}

function showPins(body, pins) {
  const rows = Object.entries(pins).map(([pin, values]) => {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = pin;
    const td = document.createElement("td");
    td.textContent = values.join(" | ");
    tr.append(th, td);
    return tr;
  });
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 2;
    td.className = "muted";
    td.textContent = "No values yet.";
    tr.append(td);
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

document.addEventListener("DOMContentLoaded", () => {
  const source = document.querySelector("[data-events]");
  if (!source || !window.EventSource) return;
  const live = document.querySelector("[data-live]");
  const say = (text) => { if (live) { live.hidden = false; live.textContent = text; } };
  const events = new EventSource(source.dataset.events);
  events.addEventListener("open", () => say("· live"));
  events.addEventListener("error", () => say("· reconnecting…"));
  events.addEventListener("presence", (e) => {
    const p = JSON.parse(e.data);
    const scope = source.matches(`[data-device-id="${p.id}"]`) ? document
      : source.querySelector(`[data-device-id="${p.id}"]`);
    if (!scope) return;  // not on this page
    setStatus(scope, p.online);
    for (const seen of scope.querySelectorAll("[data-seen]")) {
      seen.textContent = p.online ? "now" : p.at;
    }
  });
  events.addEventListener("pins", (e) => {
    const body = document.querySelector("[data-pins]");
    if (body) showPins(body, JSON.parse(e.data));
  });
  events.addEventListener("resync", () => window.location.reload());
  events.addEventListener("ended", () => { events.close(); say("· not live: sign in again"); });
  window.addEventListener("pagehide", () => events.close());
});
