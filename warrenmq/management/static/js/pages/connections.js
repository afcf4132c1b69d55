// Connections: the paged list, and one connection with its channels and a Close button.
import { api, path } from "../api.js";
import { h, clear, num, bytes, when, act, confirmDialog } from "../dom.js";
import { PagedList, simpleTable, kvTable } from "../table.js";
import { channelColumns } from "./channels.js";

export function mount(el, ctx) {
  return ctx.params[0] == null ? list(el, ctx) : detail(el, ctx, ctx.params[0]);
}

function link(name) {
  return h("a", { href: "#/connections/" + encodeURIComponent(name) }, name);
}

function stateBadge(state) {
  return h("span", { class: "badge " + (state === "running" ? "ok" : state === "blocked" || state === "blocking" ? "warn" : "") }, state);
}

export async function closeConnection(button, name, after) {
  if (!(await confirmDialog(`Close connection ${name}? Its client is told "Closed via management plugin".`, "Close connection"))) return;
  await act(button, () => api(path("connections", name), { method: "DELETE", headers: { "X-Reason": "Closed via WarrenMQ's web UI" } }),
    "Connection closed.");
  if (after) after();
}

function list(el, ctx) {
  const vhost = ctx.vhost;
  const table = new PagedList({
    noun: "connections",
    endpoint: () => (vhost ? path("vhosts", vhost, "connections") : "/api/connections"),
    state: ctx.query,
    onState: ctx.setQuery,
    columns: [
      { key: "name", title: "Name", get: (c) => link(c.name) },
      { key: "user_provided_name", title: "Client name" },
      { key: "user", title: "User" },
      { key: "vhost", title: "Vhost" },
      { key: "client_properties", title: "Client", sort: false, get: (c) => [c.client_properties?.product, c.client_properties?.version].filter(Boolean).join(" ") },
      { key: "state", title: "State", get: (c) => stateBadge(c.state) },
      { key: "channels", title: "Channels", num: true },
      { key: "recv_oct_details.rate", title: "From client", num: true, fields: ["recv_oct_details"], get: (c) => bytes(c.recv_oct_details?.rate) + "/s" },
      { key: "send_oct_details.rate", title: "To client", num: true, fields: ["send_oct_details"], get: (c) => bytes(c.send_oct_details?.rate) + "/s" },
    ],
    actions: (c) => h("button", { class: "small danger", onclick: (e) => closeConnection(e.target, c.name, () => table.refresh()) }, "Close"),
  });
  el.append(h("div", { class: "page-head" }, h("h1", {}, "Connections"), vhost ? h("span", { class: "muted" }, "in " + vhost) : null),
    h("div", { class: "card" }, table.element));
  return { refresh: () => table.refresh() };
}

function detail(el, ctx, name) {
  const info = h("div");
  const chans = h("div");
  const closeButton = h("button", { class: "danger", onclick: () => closeConnection(closeButton, name, () => ctx.go("#/connections")) }, "Close connection");
  el.append(
    h("div", { class: "page-head" }, h("div", {}, h("div", { class: "crumbs" }, h("a", { href: "#/connections" }, "Connections")),
      h("h1", {}, name, " ", h("span", { class: "muted", id: "client-name" }))),
      h("div", { class: "actions" }, closeButton)),
    h("div", { class: "row" }, h("div", { class: "card" }, h("h2", {}, "Details"), info), h("div", { class: "card" }, h("h2", {}, "Client properties"), h("div", { id: "client-props" }))),
    h("div", { class: "card" }, h("h2", {}, "Channels"), chans));
  let gone = false;
  return {
    async refresh() {
      if (gone) return;
      let c;
      try {
        c = await api(path("connections", name));
      } catch (e) {
        if (e.status === 404) { gone = true; clear(info, h("p", { class: "muted" }, "This connection is closed.")); clear(chans); closeButton.disabled = true; return; }
        throw e;
      }
      el.querySelector("#client-name").textContent = c.user_provided_name || "";
      clear(info, kvTable([
        ["State", stateBadge(c.state)], ["User", c.user], ["Virtual host", c.vhost], ["Protocol", c.protocol],
        ["Authentication", c.auth_mechanism], ["From", `${c.peer_host}:${c.peer_port}`], ["To", `${c.host}:${c.port}`],
        ["TLS", c.ssl ? "yes" : "no"], ["Connected at", when(c.connected_at)], ["Heartbeat", c.timeout + " s"],
        ["Frame max", num(c.frame_max) + " bytes"], ["Channel max", num(c.channel_max)],
        ["Received", `${bytes(c.recv_oct)} (${bytes(c.recv_oct_details?.rate)}/s)`], ["Sent", `${bytes(c.send_oct)} (${bytes(c.send_oct_details?.rate)}/s)`],
      ]));
      const props = Object.entries(c.client_properties || {}).filter(([k]) => k !== "capabilities");
      clear(el.querySelector("#client-props"), kvTable(props));
      const list = await api(path("connections", name, "channels"));
      clear(chans, simpleTable(list, channelColumns(), "No channels."));
    },
  };
}
