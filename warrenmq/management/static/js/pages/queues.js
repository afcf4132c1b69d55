// Queues: the list the server pages, sorts and filters (fast at 10,000 queues), and a declare form.
import { api, path } from "../api.js";
import { h, rate, features, act } from "../dom.js";
import { PagedList } from "../table.js";
import { form, input, select, kvEditor, vhostOptions, QUEUE_ARGUMENTS } from "../forms.js";

export function queueLink(vhost, name) {
  return h("a", { href: `#/queues/${encodeURIComponent(vhost)}/${encodeURIComponent(name)}` }, name);
}

export function mount(el, ctx) {
  const vhost = ctx.vhost;
  const table = new PagedList({
    noun: "queues",
    endpoint: () => (vhost ? path("queues", vhost) : "/api/queues"),
    state: ctx.query,
    onState: ctx.setQuery,
    defaultSize: 100,
    columns: [
      { key: "vhost", title: "Vhost" },
      { key: "name", title: "Name", get: (q) => queueLink(q.vhost, q.name) },
      { key: "type", title: "Type" },
      { key: "features", title: "Features", sort: false, fields: ["durable", "auto_delete", "exclusive", "arguments"], get: features },
      { key: "policy", title: "Policy" },
      { key: "state", title: "State", get: (q) => h("span", { class: "badge " + (q.state === "running" ? "ok" : "warn") }, q.state) },
      { key: "messages_ready", title: "Ready", num: true },
      { key: "messages_unacknowledged", title: "Unacked", num: true },
      { key: "messages", title: "Total", num: true },
      { key: "consumers", title: "Consumers", num: true },
      { key: "message_stats.publish_details.rate", title: "Incoming", num: true, get: (q) => rate(q.message_stats?.publish_details?.rate ?? 0) },
      { key: "message_stats.deliver_get_details.rate", title: "Deliver / get", num: true, get: (q) => rate(q.message_stats?.deliver_get_details?.rate ?? 0) },
      { key: "message_stats.ack_details.rate", title: "Ack", num: true, get: (q) => rate(q.message_stats?.ack_details?.rate ?? 0) },
    ],
  });
  el.append(h("div", { class: "page-head" }, h("h1", {}, "Queues"), vhost ? h("span", { class: "muted" }, "in " + vhost) : null),
    h("div", { class: "card" }, table.element), addQueue(ctx, () => table.refresh()));
  return { refresh: () => table.refresh() };
}

function addQueue(ctx, after) {
  const vhost = h("select", { name: "vhost", "aria-label": "Virtual host" });
  vhostOptions(ctx.vhost || "/").then((options) => vhost.append(...options));
  const type = select([["classic", "Classic"], ["quorum", "Quorum"]], { name: "type" });
  const name = input({ name: "name", required: true });
  const durable = select([["true", "Durable"], ["false", "Transient"]], { name: "durable" });
  const autoDelete = select([["false", "No"], ["true", "Yes"]], { name: "auto_delete" });
  const args = kvEditor(QUEUE_ARGUMENTS, "argument");
  const button = h("button", { class: "primary", type: "submit" }, "Add queue");
  const f = form([["Virtual host", vhost], ["Type", type], ["Name", name], ["Durability", durable], ["Auto delete", autoDelete],
    ["Arguments", args]], [button], () => act(button, async () => {
    const a = args.value();
    if (type.value === "quorum") a["x-queue-type"] = "quorum";
    await api(path("queues", vhost.value, name.value), { method: "PUT", body: { durable: durable.value === "true", auto_delete: autoDelete.value === "true", arguments: a } });
    name.value = ""; args.reset(); after();
  }, "Queue declared."));
  return h("details", { class: "card" }, h("summary", {}, "Add a new queue"), f);
}
