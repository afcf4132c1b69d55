// WarrenMQ's web UI: log in, then pages routed by the URL's hash (#/queues/%2F/name?page=2),
// each refreshed on a timer.  Plain ES modules over the management HTTP API; no build step.
import { api, loggedIn, setCredentials, forget, whenLoggedOut } from "./js/api.js";
import { h, clear } from "./js/dom.js";
import * as overview from "./js/pages/overview.js";
import * as connections from "./js/pages/connections.js";
import * as channels from "./js/pages/channels.js";
import * as exchanges from "./js/pages/exchanges.js";
import * as queues from "./js/pages/queues.js";
import * as queue from "./js/pages/queue.js";
import * as admin from "./js/pages/admin.js";

// [pattern, page module, nav tab]
const ROUTES = [
  [/^\/?$/, overview, "Overview"],
  [/^\/connections$/, connections, "Connections"],
  [/^\/connections\/([^/]+)$/, connections, "Connections"],
  [/^\/channels$/, channels, "Channels"],
  [/^\/exchanges$/, exchanges, "Exchanges"],
  [/^\/exchanges\/([^/]+)\/([^/]*)$/, exchanges, "Exchanges"],
  [/^\/queues$/, queues, "Queues"],
  [/^\/queues\/([^/]+)\/([^/]+)$/, queue, "Queues"],
  [/^\/admin(?:\/([a-z]+))?(?:\/([^/]+))?$/, admin, "Admin"],
];
const TABS = [["Overview", "#/"], ["Connections", "#/connections"], ["Channels", "#/channels"],
  ["Exchanges", "#/exchanges"], ["Queues", "#/queues"], ["Admin", "#/admin"]];

const view = document.getElementById("view");
const nav = document.getElementById("nav");
const vhostSelect = document.getElementById("vhost-select");
const refreshSelect = document.getElementById("refresh-select");
let user = null;
let current = null; // {page: {refresh, unmount}, hash}
let timer = null;
let refreshing = false;

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [route, search = ""] = raw.split("?");
  return { route, query: Object.fromEntries(new URLSearchParams(search)) };
}

function setQuery(values) {
  const { route, query } = parseHash();
  const merged = { ...query, ...values };
  for (const k of Object.keys(merged)) if (merged[k] === "" || merged[k] == null) delete merged[k];
  const search = new URLSearchParams(merged).toString();
  history.replaceState(null, "", "#" + route + (search ? "?" + search : ""));
}

async function route() {
  if (!user) return;
  const { route: where, query } = parseHash();
  let found = null;
  for (const [pattern, module, tab] of ROUTES) {
    const m = where.match(pattern);
    if (m) { found = { module, tab, params: m.slice(1).map((x) => (x == null ? x : decodeURIComponent(x))) }; break; }
  }
  if (current && current.page.unmount) current.page.unmount();
  current = null;
  for (const a of nav.children) a.classList.toggle("on", found && a.textContent === found.tab);
  if (!found) { clear(view, h("div", { class: "card" }, h("h1", {}, "Not found"), h("a", { href: "#/" }, "Back to the overview"))); return; }
  const container = h("div", { class: "page" });
  view.replaceChildren(container);
  const ctx = { params: found.params, query, setQuery, user, vhost: vhostSelect.value, go: (hash) => { location.hash = hash; } };
  const page = found.module.mount(container, ctx);
  current = { page };
  await refresh();
}

async function refresh() {
  if (!current || refreshing) return;
  refreshing = true;
  try { await current.page.refresh(); } catch (e) { console.error(e); } finally { refreshing = false; }
}

function schedule() {
  clearInterval(timer);
  const seconds = Number(refreshSelect.value);
  localStorage.setItem("warren-refresh", String(seconds));
  if (seconds > 0) timer = setInterval(refresh, seconds * 1000);
}

async function fillVhosts() {
  const chosen = localStorage.getItem("warren-vhost") || "";
  const vhosts = await api("/api/vhosts?columns=name");
  vhostSelect.replaceChildren(h("option", { value: "" }, "All"), ...vhosts.map((v) => h("option", { value: v.name }, v.name)));
  vhostSelect.value = vhosts.some((v) => v.name === chosen) ? chosen : "";
}

async function start() {
  let me;
  try {
    me = await api("/api/whoami");
  } catch (e) {
    showLogin(e.status === 401 && e.message !== "Login failed" ? e.message : "");
    return;
  }
  document.getElementById("login").hidden = true;
  document.getElementById("who").textContent = me.name;
  const isAdmin = me.tags.includes("administrator");
  const isPolicymaker = isAdmin || me.tags.includes("policymaker");
  nav.replaceChildren(...TABS.filter(([name]) => name !== "Admin" || isPolicymaker).map(([name, href]) => h("a", { href }, name)));
  nav.hidden = false;
  document.getElementById("controls").hidden = false;
  refreshSelect.value = localStorage.getItem("warren-refresh") || "5";
  await fillVhosts().catch(() => {});
  // Only now: a hash change while logging in must not mount a page that this route() replaces.
  user = me;
  schedule();
  await route();
}

function showLogin(message = "") {
  user = null;
  current = null;
  clearInterval(timer);
  nav.hidden = true;
  document.getElementById("controls").hidden = true;
  view.replaceChildren();
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message;
  document.getElementById("login-user").focus();
}

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  setCredentials(document.getElementById("login-user").value, document.getElementById("login-pass").value);
  try {
    await api("/api/whoami");
  } catch (e) {
    forget();
    showLogin(e.status === 401 ? (e.message === "Login failed" ? "Wrong user name or password." : e.message) : e.message);
    return;
  }
  document.getElementById("login-pass").value = "";
  start();
});
document.getElementById("logout").addEventListener("click", () => { forget(); showLogin(); });
refreshSelect.addEventListener("change", schedule);
vhostSelect.addEventListener("change", () => { localStorage.setItem("warren-vhost", vhostSelect.value); route(); });
window.addEventListener("hashchange", route);
whenLoggedOut(() => showLogin("Your session ended: log in again."));

if (loggedIn()) start(); else showLogin();
