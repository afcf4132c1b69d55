// WarrenMQ's web UI: a few tables over the management HTTP API, refreshed every 5 seconds.
"use strict";

const TABS = {
  Overview: { path: "/api/overview", render: overview },
  Connections: { path: "/api/connections", cols: [["name", "Name"], ["user", "User"], ["vhost", "Vhost"], ["state", "State"], ["channels", "Channels", 1], ["recv_oct", "Bytes in", 1], ["send_oct", "Bytes out", 1]] },
  Channels: { path: "/api/channels", cols: [["name", "Channel"], ["user", "User"], ["consumer_count", "Consumers", 1], ["prefetch_count", "Prefetch", 1], ["messages_unacknowledged", "Unacked", 1], ["message_stats.publish", "Published", 1], ["message_stats.deliver_get", "Delivered", 1], ["message_stats.ack", "Acked", 1]] },
  Exchanges: { path: "/api/exchanges", cols: [["vhost", "Vhost"], ["name", "Name"], ["type", "Type"], ["durable", "Durable"], ["message_stats.publish_in", "In", 1], ["message_stats.publish_out", "Out", 1]] },
  Queues: { path: "/api/queues", cols: [["vhost", "Vhost"], ["name", "Name"], ["type", "Type"], ["policy", "Policy"], ["messages_ready", "Ready", 1], ["messages_unacknowledged", "Unacked", 1], ["messages", "Total", 1], ["consumers", "Consumers", 1], ["message_stats.publish_details.rate", "In /s", 1], ["message_stats.deliver_get_details.rate", "Out /s", 1]], actions: queueActions },
  Vhosts: { path: "/api/vhosts", cols: [["name", "Name"], ["messages_ready", "Ready", 1], ["messages_unacknowledged", "Unacked", 1]] },
  Users: { path: "/api/users", cols: [["name", "Name"], ["tags", "Tags"]] },
  Policies: { path: "/api/policies", cols: [["vhost", "Vhost"], ["name", "Name"], ["pattern", "Pattern"], ["apply-to", "Apply to"], ["definition", "Definition"], ["priority", "Priority", 1]] },
};
let current = "Overview";
let auth = sessionStorage.getItem("warren-auth");
let timer = null;

async function api(path, options = {}) {
  const headers = { Authorization: "Basic " + auth, "Content-Type": "application/json" };
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) { logout(); throw new Error("not authorised"); }
  if (!response.ok) throw new Error((await response.json().catch(() => ({}))).reason || response.statusText);
  return response.status === 204 ? null : response.json();
}

function pick(item, dotted) {
  return dotted.split(".").reduce((v, k) => (v == null ? undefined : v[k]), item);
}

function cell(value, numeric) {
  const td = document.createElement("td");
  if (numeric) td.className = "n";
  td.textContent = value == null ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
  return td;
}

function table(items, cols, actions) {
  const t = document.createElement("table");
  const head = t.insertRow();
  for (const [, title] of cols) head.appendChild(Object.assign(document.createElement("th"), { textContent: title }));
  if (actions) head.appendChild(document.createElement("th"));
  for (const item of items) {
    const row = t.insertRow();
    for (const [key, , numeric] of cols) row.appendChild(cell(pick(item, key), numeric));
    if (actions) row.appendChild(actions(item));
  }
  return t;
}

function queueActions(q) {
  const td = document.createElement("td");
  const path = "/api/queues/" + encodeURIComponent(q.vhost) + "/" + encodeURIComponent(q.name);
  for (const [label, suffix] of [["Purge", "/contents"], ["Delete", ""]]) {
    const b = Object.assign(document.createElement("button"), { textContent: label });
    b.onclick = async () => {
      if (confirm(label + " queue " + q.name + "?")) { await api(path + suffix, { method: "DELETE" }); refresh(); }
    };
    td.appendChild(b);
  }
  return td;
}

function overview(o) {
  const rows = [
    ["Node", o.node], ["Version", o.product_name + " " + o.product_version + " (RabbitMQ " + o.rabbitmq_version + " compatible)"],
    ["Connections", o.object_totals.connections], ["Channels", o.object_totals.channels],
    ["Exchanges", o.object_totals.exchanges], ["Queues", o.object_totals.queues], ["Consumers", o.object_totals.consumers],
    ["Messages ready", o.queue_totals.messages_ready], ["Messages unacked", o.queue_totals.messages_unacknowledged],
    ["Publish rate /s", pick(o, "message_stats.publish_details.rate")], ["Deliver rate /s", pick(o, "message_stats.deliver_get_details.rate")],
  ];
  const t = document.createElement("table");
  for (const [k, v] of rows) { const r = t.insertRow(); r.appendChild(cell(k)); r.appendChild(cell(v)); }
  return t;
}

async function refresh() {
  const tab = TABS[current];
  const view = document.getElementById("view");
  try {
    const data = await api(tab.path);
    view.replaceChildren(tab.render ? tab.render(data) : table(data, tab.cols, tab.actions));
  } catch (e) {
    view.replaceChildren(Object.assign(document.createElement("p"), { className: "err", textContent: e.message }));
  }
}

function show(name) {
  current = name;
  for (const a of document.querySelectorAll("nav a")) a.className = a.textContent === name ? "on" : "";
  refresh();
}

function logout() {
  sessionStorage.removeItem("warren-auth");
  auth = null;
  clearInterval(timer);
  document.getElementById("login").hidden = false;
  document.getElementById("view").replaceChildren();
  document.getElementById("nav").replaceChildren();
}

async function start() {
  try {
    const me = await api("/api/whoami");
    document.getElementById("who").textContent = me.name;
  } catch (e) { return; }
  document.getElementById("login").hidden = true;
  const nav = document.getElementById("nav");
  for (const name of Object.keys(TABS)) {
    const a = Object.assign(document.createElement("a"), { textContent: name });
    a.onclick = () => show(name);
    nav.appendChild(a);
  }
  show(current);
  timer = setInterval(refresh, 5000);
}

document.getElementById("login").onsubmit = (event) => {
  event.preventDefault();
  auth = btoa(document.getElementById("u").value + ":" + document.getElementById("p").value);
  sessionStorage.setItem("warren-auth", auth);
  start().then(() => { if (!auth) document.getElementById("lerr").textContent = "Login failed"; });
};

if (auth) start(); else logout();
