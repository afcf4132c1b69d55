// A list the server pages, sorts and filters (RabbitMQ's page, page_size, name, use_regex, sort,
// sort_reverse): the browser only ever holds one page, however many objects there are.
import { api, query } from "./api.js";
import { h, clear, num, pick, json } from "./dom.js";

const SIZES = [20, 50, 100, 500];

// columns: [{key, title, num, sort (key to sort by; false: not sortable), fields (API columns),
//            get(item) -> node or text}]
export class PagedList {
  constructor({ endpoint, columns, noun, state = {}, onState = () => {}, actions = null, defaultSize = 50, filter = true }) {
    this.endpoint = endpoint; // () -> path, or null while there is nothing to list
    this.columns = columns;
    this.noun = noun;
    this.actions = actions; // item -> node (a last column of buttons)
    this.onState = onState;
    this.state = {
      page: Number(state.page) || 1,
      size: Number(state.size) || defaultSize,
      name: state.name || "",
      regex: state.regex === "1",
      sort: state.sort || "",
      reverse: state.reverse === "1",
    };
    this.filter = h("input", { type: "search", placeholder: "Filter by name", value: this.state.name, "aria-label": "Filter",
      oninput: () => this.debounce() });
    this.regex = h("input", { type: "checkbox", checked: this.state.regex, onchange: () => this.update({ regex: this.regex.checked, page: 1 }) });
    this.sizeSelect = h("select", { "aria-label": "Page size", onchange: () => this.update({ size: Number(this.sizeSelect.value), page: 1 }) },
      SIZES.map((n) => h("option", { value: n, selected: n === this.state.size }, n)));
    this.countText = h("span", { class: "count" });
    this.pager = h("div", { class: "pager" });
    this.table = h("div", { class: "table-wrap" });
    this.element = h("div", { class: "paged-list" },
      h("div", { class: "list-controls" }, filter ? [this.filter, h("label", {}, this.regex, " Regex")] : null,
        h("label", {}, "Page size ", this.sizeSelect), this.countText, this.pager),
      this.table);
    this.timer = null;
    this.asked = 0;
  }

  debounce() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.update({ name: this.filter.value, page: 1 }), 250);
  }

  update(changes) {
    Object.assign(this.state, changes);
    const s = this.state;
    this.onState({ page: s.page > 1 ? s.page : "", size: s.size, name: s.name, regex: s.regex ? "1" : "", sort: s.sort, reverse: s.reverse ? "1" : "" });
    return this.refresh();
  }

  fields() {
    const out = new Set(["name", "vhost"]);
    for (const c of this.columns) for (const f of c.fields || [c.key]) out.add(f);
    return [...out].join(",");
  }

  async refresh() {
    const base = this.endpoint();
    if (!base) return;
    const s = this.state;
    const params = {
      page: s.page, page_size: s.size, name: s.name, use_regex: s.regex ? "true" : "",
      sort: s.sort, sort_reverse: s.reverse ? "true" : "", pagination: "true", columns: this.fields(),
    };
    const started = performance.now();
    const asked = ++this.asked;
    let data;
    try {
      data = await api(base + query(params));
    } catch (e) {
      if (asked !== this.asked) return;
      if (e.status === 400 && s.page > 1) return this.update({ page: 1 }); // the list shrank
      clear(this.table, h("p", { class: "error" }, e.message));
      return;
    }
    if (asked !== this.asked) return; // a later request (another page, sort or filter) answers instead
    this.render(data, Math.round(performance.now() - started));
  }

  render(data, ms) {
    const s = this.state;
    const first = (data.page - 1) * data.page_size;
    const filtered = data.filtered_count !== data.total_count ? ` (filtered from ${num(data.total_count)})` : "";
    this.countText.textContent = data.filtered_count
      ? `${num(first + 1)}–${num(first + data.item_count)} of ${num(data.filtered_count)} ${this.noun}${filtered}`
      : `No ${this.noun}${filtered}`;
    this.countText.title = `answered in ${ms} ms`;
    this.countText.dataset.ms = ms;
    this.countText.dataset.total = data.total_count;
    const pages = Math.max(1, data.page_count);
    const go = (page) => () => this.update({ page });
    const pageInput = h("input", { type: "number", min: 1, max: pages, value: data.page, style: { width: "4.5em" }, "aria-label": "Page",
      onchange: () => this.update({ page: Math.min(pages, Math.max(1, Number(pageInput.value) || 1)) }) });
    clear(this.pager,
      h("button", { class: "small", title: "First page", disabled: data.page <= 1, onclick: go(1) }, "«"),
      h("button", { class: "small", title: "Previous page", disabled: data.page <= 1, onclick: go(data.page - 1) }, "‹"),
      h("span", {}, "Page ", pageInput, ` of ${num(pages)}`),
      h("button", { class: "small", title: "Next page", disabled: data.page >= pages, onclick: go(data.page + 1) }, "›"),
      h("button", { class: "small", title: "Last page", disabled: data.page >= pages, onclick: go(pages) }, "»"));
    const head = h("tr", {}, this.columns.map((c) => {
      const key = c.sort === undefined ? c.key : c.sort;
      if (key === false) return h("th", { class: c.num ? "n" : "" }, c.title);
      const sorted = s.sort === key;
      return h("th", {
        class: ["sortable", c.num ? "n" : "", sorted ? "sorted" : "", sorted && s.reverse ? "reverse" : ""].join(" "),
        title: "Sort by " + c.title,
        // numbers largest first; a second click turns the order round
        onclick: () => this.update({ sort: key, reverse: this.state.sort === key ? !this.state.reverse : !!c.num, page: 1 }),
      }, c.title);
    }), this.actions ? h("th", {}) : null);
    const rows = data.items.map((item) => h("tr", {}, this.columns.map((c) => cell(c, item)),
      this.actions ? h("td", { class: "n" }, this.actions(item)) : null));
    clear(this.table, h("table", {}, h("thead", {}, head), h("tbody", {}, rows)),
      data.items.length ? null : h("p", { class: "empty" }, s.name ? "Nothing matches the filter." : `No ${this.noun}.`));
  }
}

function cell(column, item) {
  const value = column.get ? column.get(item) : pick(item, column.key);
  return h("td", { class: column.num ? "n" : "" }, value instanceof Node || Array.isArray(value) ? value : column.num ? num(value) : json(value));
}

// A plain table of a few items (no paging): columns as above.
export function simpleTable(items, columns, empty = "None.") {
  if (!items.length) return h("p", { class: "empty" }, empty);
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "n" : "" }, c.title)))),
    h("tbody", {}, items.map((item) => h("tr", {}, columns.map((c) => cell(c, item)))))));
}

// Key/value rows: [[label, value], ...]
export function kvTable(rows) {
  return h("table", { class: "kv" }, rows.filter((r) => r).map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v instanceof Node || Array.isArray(v) ? v : json(v)))));
}
