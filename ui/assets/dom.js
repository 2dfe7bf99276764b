// Building DOM nodes without a framework: el("a", {href, class, onclick}, ...children).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A table: columns [{title, class, field, cell(row), cellClass(row)}], rows. */
export function table(columns, rows, { id, rowAttrs } = {}) {
  return el("table", { id },
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", { class: c.class }, c.title)))),
    el("tbody", {}, rows.map((row) => el("tr", rowAttrs ? rowAttrs(row) : {},
      columns.map((c) => el("td", {
        class: [c.class, c.cellClass ? c.cellClass(row) : ""].filter(Boolean).join(" ") || undefined,
        dataset: c.field ? { field: c.field } : undefined,
      }, c.cell(row)))))));
}
