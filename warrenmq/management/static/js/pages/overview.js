// The overview: totals, live message-rate and queued-message charts, the node's resources.
import { api, query } from "../api.js";
import { h, clear, num, rate, bytes, duration } from "../dom.js";
import { renderChart, ratesFromSamples, pointsFromSamples, COLORS } from "../chart.js";
import { simpleTable } from "../table.js";

const RATES = [["publish", "Publish"], ["confirm", "Publisher confirm"], ["deliver_get", "Deliver / get"],
  ["ack", "Consumer ack"], ["redeliver", "Redelivered"]];
const LENGTHS = [["messages_ready", "Ready"], ["messages_unacknowledged", "Unacked"], ["messages", "Total"]];
const SPANS = [[60, "Last minute"], [300, "Last 5 minutes"], [600, "Last 10 minutes"]];

export function mount(el, ctx) {
  const span = h("select", { "aria-label": "Chart period", onchange: () => { ctx.setQuery({ span: span.value }); page.refresh(); } },
    SPANS.map(([s, label]) => h("option", { value: s, selected: String(s) === (ctx.query.span || "60") }, label)));
  const tiles = h("div", { class: "tiles" });
  const ratesBox = h("div", { class: "chart-box", id: "chart-rates" });
  const lengthsBox = h("div", { class: "chart-box", id: "chart-lengths" });
  const node = h("div");
  const listeners = h("div");
  el.append(
    h("div", { class: "page-head" }, h("h1", {}, "Overview"), h("span", { class: "muted", id: "node-name" })),
    tiles,
    h("div", { class: "row" },
      h("div", { class: "card" }, h("div", { class: "chart-head" }, h("h2", {}, "Message rates"), span), ratesBox),
      h("div", { class: "card" }, h("div", { class: "chart-head" }, h("h2", {}, "Queued messages")), lengthsBox)),
    h("div", { class: "row" },
      h("div", { class: "card" }, h("h2", {}, "Node"), node),
      h("div", { class: "card" }, h("h2", {}, "Listeners"), listeners)));

  const page = {
    async refresh() {
      const seconds = Number(span.value);
      const age = seconds + 10;
      const o = await api("/api/overview" + query({ msg_rates_age: age, msg_rates_incr: 5, lengths_age: age, lengths_incr: 5 }));
      document.getElementById("node-name").textContent = `${o.product_name} ${o.product_version} on ${o.node} — RabbitMQ ${o.rabbitmq_version} compatible`;
      const t = o.object_totals, q = o.queue_totals, m = o.message_stats || {};
      const rateOf = (k) => (m[k + "_details"] ? m[k + "_details"].rate : 0);
      clear(tiles,
        tile("Connections", t.connections, "#/connections"), tile("Channels", t.channels, "#/channels"),
        tile("Exchanges", t.exchanges, "#/exchanges"), tile("Queues", t.queues, "#/queues"),
        tile("Consumers", t.consumers), tile("Ready", q.messages_ready), tile("Unacked", q.messages_unacknowledged),
        tile("Publish", rate(rateOf("publish"))), tile("Deliver / get", rate(rateOf("deliver_get"))));
      const now = Date.now();
      renderChart(ratesBox, {
        name: "rates", span: seconds * 1000, now, format: (v) => num(v) + "/s",
        series: RATES.filter(([k]) => k in m).map(([k, label], i) => ({ key: k, label, color: COLORS[i], points: ratesFromSamples(m[k + "_details"].samples || []) })),
      });
      renderChart(lengthsBox, {
        name: "lengths", span: seconds * 1000, now, format: num, integer: true,
        series: LENGTHS.map(([k, label], i) => ({ key: k, label, color: COLORS[i], points: pointsFromSamples((q[k + "_details"] || {}).samples || []) })),
      });
      if (o.listeners) {
        clear(listeners, simpleTable(o.listeners, [{ key: "protocol", title: "Protocol" }, { key: "ip_address", title: "Bound to" }, { key: "port", title: "Port" }]));
      } else {
        clear(listeners, h("p", { class: "muted" }, "Shown to monitoring users."));
      }
      await nodeCard(node, ctx);
    },
  };
  return page;
}

function tile(label, value, href) {
  const body = [h("div", { class: "v" }, typeof value === "number" ? num(value) : value), h("div", { class: "k" }, label)];
  return href ? h("a", { class: "tile", href }, body) : h("div", { class: "tile" }, body);
}

function bar(used, limit, reverse = false) {
  const share = limit ? Math.min(1, used / limit) : 0;
  const level = reverse ? (share > 0.8 ? "bad" : share > 0.6 ? "warn" : "") : share > 0.9 ? "bad" : share > 0.7 ? "warn" : "";
  return h("div", { class: "bar " + level }, h("span", { style: { width: (share * 100).toFixed(1) + "%" } }));
}

async function nodeCard(el, ctx) {
  const tags = ctx.user.tags;
  if (!tags.includes("administrator") && !tags.includes("monitoring")) {
    clear(el, h("p", { class: "muted" }, "Shown to monitoring users."));
    return;
  }
  const [n] = await api("/api/nodes");
  const alarms = [n.mem_alarm ? h("span", { class: "badge bad" }, "memory alarm") : null,
    n.disk_free_alarm ? h("span", { class: "badge bad" }, "disk alarm") : null];
  const rows = [
    ["Name", n.name],
    ["Uptime", duration(n.uptime)],
    ["Memory", [`${bytes(n.mem_used)} of ${bytes(n.mem_limit)} high watermark`, bar(n.mem_used, n.mem_limit)]],
    ["Disk free", [`${bytes(n.disk_free)} (limit ${bytes(n.disk_free_limit)})`, bar(n.disk_free_limit, n.disk_free, true)]],
    ["File descriptors", [`${num(n.fd_used)} of ${num(n.fd_total)}`, bar(n.fd_used, n.fd_total)]],
    ["Sockets", `${num(n.sockets_used)} of ${num(n.sockets_total)}`],
    ["Processors", n.processors],
    ["Data directory", h("code", {}, n.db_dir)],
    ["Alarms", alarms.some((a) => a) ? alarms : h("span", { class: "badge ok" }, "none")],
  ];
  clear(el, h("table", { class: "kv" }, rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v)))));
}
