// Charts drawn as SVG with the DOM: no library, no inline style (colours are classes of style.css).

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// The axis's top and its step: four steps of 1, 2, 2.5 or 5 times a power of ten (whole numbers for counts).
function axis(value, whole) {
  if (value <= 0) return { top: whole ? 4 : 1, step: whole ? 1 : 0.25 };
  const rough = value / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  for (const factor of [1, 2, 2.5, 5, 10]) {
    const step = factor * power;
    if (step >= rough && (!whole || Number.isInteger(step))) return { top: step * 4, step };
  }
  return { top: 40 * power, step: 10 * power };
}

function legend(series) {
  const list = document.createElement("ul");
  list.className = "legend";
  series.forEach((name, index) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = `swatch c${index % 8}`;
    item.append(swatch, document.createTextNode(name));
    list.append(item);
  });
  return list;
}

function format(value, money) {
  if (money) return value >= 1 ? `$${value.toFixed(2)}` : `$${value.toFixed(3)}`;
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}

// Stacked bars per day: {series: {name: [values per day]}}.
export function stackedBars(days, series, { money = false, label = "" } = {}) {
  const names = Object.keys(series);
  const width = 640;
  const height = 220;
  const pad = { left: 44, right: 8, top: 10, bottom: 28 };
  const totals = days.map((_, i) => names.reduce((sum, n) => sum + (series[n][i] || 0), 0));
  const { top, step } = axis(Math.max(0, ...totals), !money);
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": label });
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  for (let tick = 0; tick <= 4; tick += 1) {
    const value = step * tick;
    const y = pad.top + plotH - (plotH * tick) / 4;
    svg.append(el("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: "grid" }));
    svg.append(el("text", { x: pad.left - 6, y: y + 4, class: "axis end" }, format(value, money)));
  }
  const slot = plotW / Math.max(days.length, 1);
  const barW = Math.max(2, slot * 0.7);
  days.forEach((day, i) => {
    let y = pad.top + plotH;
    const x = pad.left + i * slot + (slot - barW) / 2;
    names.forEach((name, index) => {
      const value = series[name][i] || 0;
      if (!value) return;
      const h = (plotH * value) / top;
      y -= h;
      const bar = el("rect", { x, y, width: barW, height: Math.max(h, 0.5), class: `c${index % 8}` });
      bar.append(el("title", {}, `${day} · ${name}: ${format(value, money)}`));
      svg.append(bar);
    });
    if (days.length <= 16 || i % Math.ceil(days.length / 8) === 0) {
      svg.append(el("text", { x: x + barW / 2, y: height - 10, class: "axis middle" }, day.slice(5)));
    }
  });
  const figure = document.createElement("div");
  figure.append(svg, legend(names));
  if (!names.length || !totals.some(Boolean)) {
    const none = document.createElement("p");
    none.className = "muted";
    none.textContent = "Nothing in this period.";
    figure.append(none);
  }
  return figure;
}

// Horizontal bars of precision (0..1) per provider and category, the target drawn as a line.
export function precisionBars(rows, target) {
  const width = 640;
  const rowH = 26;
  const pad = { left: 190, right: 54, top: 8, bottom: 24 };
  const height = pad.top + pad.bottom + Math.max(rows.length, 1) * rowH;
  const plotW = width - pad.left - pad.right;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": "precision" });
  rows.forEach((row, i) => {
    const y = pad.top + i * rowH;
    const value = row.precision ?? 0;
    svg.append(el("text", { x: pad.left - 8, y: y + 17, class: "axis end" }, `${row.provider} · ${row.category}`));
    svg.append(el("rect", { x: pad.left, y: y + 5, width: plotW, height: rowH - 10, class: "track" }));
    const bar = el("rect", {
      x: pad.left,
      y: y + 5,
      width: Math.max(plotW * value, 1),
      height: rowH - 10,
      class: value >= target ? "good" : "bad",
    });
    bar.append(
      el("title", {}, `${row.rejected} rejected, ${row.approved} approved of ${row.decided} flagged at ${row.threshold}`),
    );
    svg.append(bar);
    svg.append(el("text", { x: pad.left + plotW + 6, y: y + 17, class: "axis" }, `${Math.round(value * 100)}%`));
  });
  const tx = pad.left + plotW * target;
  svg.append(el("line", { x1: tx, x2: tx, y1: pad.top, y2: height - pad.bottom + 4, class: "target" }));
  svg.append(el("text", { x: tx, y: height - 6, class: "axis middle" }, `target ${Math.round(target * 100)}%`));
  const figure = document.createElement("div");
  figure.append(svg);
  if (!rows.length) {
    const none = document.createElement("p");
    none.className = "muted";
    none.textContent = "No approvals or rejections of flagged images yet.";
    figure.append(none);
  }
  return figure;
}

// One score (0..1) as a bar with its threshold drawn: the detail view's per-provider answers.
export function scoreBar(score, threshold) {
  const svg = el("svg", { viewBox: "0 0 200 14", class: "score", preserveAspectRatio: "none", "aria-hidden": "true" });
  svg.append(el("rect", { x: 0, y: 2, width: 200, height: 10, class: "track" }));
  const reached = threshold !== null && threshold !== undefined && score >= threshold;
  svg.append(el("rect", { x: 0, y: 2, width: Math.max(200 * score, 1), height: 10, class: reached ? "bad" : "fill" }));
  if (threshold !== null && threshold !== undefined) {
    svg.append(el("line", { x1: 200 * threshold, x2: 200 * threshold, y1: 0, y2: 14, class: "threshold" }));
  }
  return svg;
}
