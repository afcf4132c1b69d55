// Channels: the paged list; a channel closes with its connection (the API closes connections).
import { path } from "../api.js";
import { h, rate } from "../dom.js";
import { PagedList } from "../table.js";
import { closeConnection } from "./connections.js";

function mode(ch) {
  return [ch.confirm ? h("span", { class: "badge", title: "publisher confirms" }, "C") : null,
    ch.transactional ? h("span", { class: "badge", title: "transactional" }, "T") : null];
}

export function channelColumns() {
  return [
    { key: "name", title: "Channel", get: (ch) => h("a", { href: "#/connections/" + encodeURIComponent(ch.connection_details.name) }, ch.name), fields: ["name", "connection_details"] },
    { key: "user", title: "User" },
    { key: "vhost", title: "Vhost" },
    { key: "confirm", title: "Mode", sort: false, fields: ["confirm", "transactional"], get: mode },
    { key: "state", title: "State" },
    { key: "prefetch_count", title: "Prefetch", num: true },
    { key: "consumer_count", title: "Consumers", num: true },
    { key: "messages_unacknowledged", title: "Unacked", num: true },
    { key: "messages_unconfirmed", title: "Unconfirmed", num: true },
    { key: "message_stats.publish_details.rate", title: "Publish", num: true, get: (ch) => rate(ch.message_stats?.publish_details?.rate ?? 0) },
    { key: "message_stats.deliver_get_details.rate", title: "Deliver / get", num: true, get: (ch) => rate(ch.message_stats?.deliver_get_details?.rate ?? 0) },
    { key: "message_stats.ack_details.rate", title: "Ack", num: true, get: (ch) => rate(ch.message_stats?.ack_details?.rate ?? 0) },
  ];
}

export function mount(el, ctx) {
  const vhost = ctx.vhost;
  const table = new PagedList({
    noun: "channels",
    endpoint: () => (vhost ? path("vhosts", vhost, "channels") : "/api/channels"),
    state: ctx.query,
    onState: ctx.setQuery,
    columns: channelColumns(),
    actions: (ch) => h("button", {
      class: "small danger", title: "Closes the channel's connection and so all its channels",
      onclick: (e) => closeConnection(e.target, ch.connection_details.name, () => table.refresh()),
    }, "Close"),
  });
  el.append(h("div", { class: "page-head" }, h("h1", {}, "Channels"), vhost ? h("span", { class: "muted" }, "in " + vhost) : null),
    h("div", { class: "card" }, table.element));
  return { refresh: () => table.refresh() };
}
