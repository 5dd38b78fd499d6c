// The moderators' console: the review queue, one review in detail, and the stats. Plain modules, no
// framework and no inline script or style (the page's Content-Security-Policy allows neither).
// Every decision goes through the review API, so the audit log and its conditional writes apply.

import { api, ApiError, settings, signOut, start } from "./api.js";
import { precisionBars, scoreBar, stackedBars } from "./charts.js";

const STATUSES = ["pending", "escalated", "approved", "rejected"];
const FLAGS = ["nsfw", "ai_generated", "deepfake", "known_bad"];
const PROVIDERS = ["builtin", "imagga", "aiornot", "imageseo", "imagerecognize", "coreviz", "rekognition"];
// What a decision may be taken from (the review API refuses anything else).
const DECISIONS = {
  pending: ["approve", "reject", "escalate"],
  escalated: ["approve", "reject"],
  rejected: ["appeal"],
  approved: [],
};
const LABELS = { approve: "Approve", reject: "Reject…", escalate: "Escalate", appeal: "Appeal…" };
const DONE = { approve: "Approved", reject: "Rejected", escalate: "Escalated", appeal: "Appealed" };
const NEEDS_REASON = new Set(["reject", "appeal"]);
// Formats a browser shows as they are; other originals (HEIC, TIFF) are shown by their thumbnail.
const SHOWABLE = new Set(["jpeg", "png", "gif", "webp", "avif", "bmp"]);
const BLUR_SETTING = "ia-console-blur";

const state = {
  query: { status: "pending" },
  items: [],
  next: null,
  read: 0, // the reviews the listing read so far: with a filter, more than it shows
  cursor: 0,
  selected: new Set(),
  counts: {},
  view: "queue",
  detail: null,
  days: 14,
};

// -- small DOM helpers ----------------------------------------------------------------------------
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const main = () => document.getElementById("main");

function notice(text, kind = "info") {
  const box = document.getElementById("notices");
  const item = h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : null }, text);
  const close = h("button", { type: "button", class: "link", "aria-label": "Dismiss", text: "×" });
  close.addEventListener("click", () => item.remove());
  item.append(close);
  box.prepend(item);
  while (box.children.length > 4) box.lastChild.remove();
  if (kind !== "error") setTimeout(() => item.remove(), 6000);
  return item;
}

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  if (n >= 1048576) return `${(n / 1048576).toFixed(1)} MB`;
  if (n >= 1024) return `${Math.round(n / 1024)} KB`;
  return `${n} B`;
}

function chips(flags) {
  return h("span", { class: "chips" }, (flags || []).map((f) => h("span", { class: `chip flag-${f}` }, f)));
}

function shot(url, alt, large = false) {
  if (!url) return h("span", { class: `shot none${large ? " large" : ""}` }, "no preview");
  const img = h("img", { class: `shot${large ? " large" : ""}`, src: url, alt, loading: "lazy", decoding: "async" });
  img.addEventListener("click", (event) => {
    event.preventDefault();
    img.classList.toggle("revealed");
  });
  img.addEventListener("error", () => img.replaceWith(h("span", { class: "shot none", title: "expired" }, "no preview")));
  return img;
}

// -- routing --------------------------------------------------------------------------------------
function parseHash() {
  const [path, search] = location.hash.replace(/^#/, "").split("?");
  const query = Object.fromEntries(new URLSearchParams(search || ""));
  const parts = (path || "/queue").split("/").filter(Boolean);
  return { parts, query };
}

async function route() {
  const { parts, query } = parseHash();
  document.querySelectorAll(".tabs a").forEach((a) => {
    a.classList.toggle("active", a.dataset.view === (parts[0] === "stats" ? "stats" : "queue"));
  });
  if (parts[0] === "review" && parts[1]) {
    state.view = "detail";
    await showDetail(parts[1]);
  } else if (parts[0] === "stats") {
    state.view = "stats";
    state.days = Number(query.days) || 14;
    await showStats();
  } else {
    state.view = "queue";
    state.query = {
      status: STATUSES.includes(query.status) ? query.status : "pending",
      ...(query.flag ? { flag: query.flag } : {}),
      ...(query.provider ? { provider: query.provider } : {}),
      ...(query.from ? { from: query.from } : {}),
      ...(query.to ? { to: query.to } : {}),
    };
    await showQueue();
  }
}

function queueHash(query = state.query) {
  return `#/queue?${new URLSearchParams(query)}`;
}

// -- the queue ------------------------------------------------------------------------------------
async function loadCounts() {
  try {
    state.counts = (await api.counts()).counts || {};
  } catch (error) {
    state.counts = {};
  }
  document.querySelectorAll("[data-count]").forEach((node) => {
    node.textContent = String(state.counts[node.dataset.count] ?? "–");
  });
}

async function showQueue() {
  state.generation = (state.generation || 0) + 1; // a page that answers after a newer listing began is dropped
  state.items = [];
  state.next = null;
  state.read = 0;
  state.cursor = 0;
  state.selected.clear();
  renderQueueFrame();
  const generation = state.generation;
  await Promise.all([loadCounts(), loadPage()]);
  if (generation === state.generation) busy(false);
}

// The list says when it is being brought up to date (assistive technology, and the browser tests).
function busy(on) {
  const list = document.getElementById("items");
  if (list) list.setAttribute("aria-busy", on ? "true" : "false");
}

async function loadPage() {
  const generation = state.generation;
  try {
    const page = await api.list({ ...state.query, limit: 25, ...(state.next ? { next: state.next } : {}) });
    if (generation !== state.generation) return; // the filters changed meanwhile
    state.items.push(...page.items);
    state.next = page.next;
    state.read += page.read || 0;
  } catch (error) {
    notice(`Could not list the reviews: ${error.message}`, "error");
  }
  if (generation === state.generation) renderItems();
}

function renderQueueFrame() {
  const q = state.query;
  const tabs = h(
    "div",
    { class: "status-tabs", role: "tablist", "aria-label": "Status" },
    STATUSES.map((status) =>
      h(
        "a",
        {
          href: queueHash({ ...q, status }),
          role: "tab",
          class: status === q.status ? "active" : null,
          "aria-selected": status === q.status ? "true" : "false",
        },
        `${status[0].toUpperCase()}${status.slice(1)} `,
        h("span", { class: "count", "data-count": status }, String(state.counts[status] ?? "–")),
      ),
    ),
  );
  const select = (name, options, label) =>
    h(
      "label",
      {},
      label,
      h(
        "select",
        { name, "aria-label": label },
        h("option", { value: "" }, "any"),
        options.map((o) => h("option", { value: o, selected: q[name] === o }, o)),
      ),
    );
  const filters = h(
    "form",
    { class: "filters", "aria-label": "Filters" },
    select("flag", FLAGS, "Flag"),
    select("provider", PROVIDERS, "Provider"),
    h("label", {}, "From", h("input", { type: "date", name: "from", value: q.from || "" })),
    h("label", {}, "To", h("input", { type: "date", name: "to", value: q.to || "" })),
    h("a", { href: queueHash({ status: q.status }), class: "link clear" }, "Clear"),
  );
  filters.addEventListener("change", () => {
    const data = new FormData(filters);
    const next = { status: q.status };
    for (const [key, value] of data.entries()) if (value) next[key] = value;
    location.hash = queueHash(next);
  });
  const all = h("input", { type: "checkbox", id: "select-all", "aria-label": "Select all shown" });
  all.addEventListener("change", () => {
    state.selected = new Set(all.checked ? state.items.map((i) => i.id) : []);
    renderItems();
  });
  const bulk = h(
    "div",
    { class: "bulk", id: "bulk" },
    all,
    h("span", { id: "selected-count", class: "muted" }, "none selected"),
    (DECISIONS[q.status] || []).map((decision) =>
      h(
        "button",
        {
          type: "button",
          class: decision === "reject" ? "danger" : null,
          "data-bulk": decision,
          onclick: () => bulkDecide(decision),
        },
        `${LABELS[decision].replace("…", "")} selected`,
      ),
    ),
  );
  main().replaceChildren(
    h(
      "section",
      { class: "queue", "aria-label": "Review queue" },
      h("h1", { class: "sr-only" }, "Review queue"),
      tabs,
      filters,
      bulk,
      h("ol", {
        class: "items",
        id: "items",
        "aria-busy": "true",
        "aria-label": `${q.status} reviews, oldest first`,
        "data-query": new URLSearchParams(q).toString(),
      }),
      h("p", { class: "muted", id: "queue-end" }),
    ),
  );
}

// The buttons of the decisions open to an item in its status; `label(decision)` is what a button shows.
function decisionButtons(item, label) {
  return (DECISIONS[item.status] || []).map((decision) =>
    h(
      "button",
      {
        type: "button",
        class: decision === "reject" ? "danger" : decision === "approve" ? "primary" : null,
        "data-decision": decision,
        onclick: () => act(item, decision),
      },
      ...label(decision),
    ),
  );
}

function rowActions(item) {
  return h("div", { class: "row-actions" }, decisionButtons(item, (decision) => [LABELS[decision]]));
}

function itemRow(item, index) {
  const href = `#/review/${item.id}`;
  const pick = h("input", {
    type: "checkbox",
    class: "pick",
    checked: state.selected.has(item.id),
    "aria-label": `Select ${item.key}`,
  });
  pick.addEventListener("change", () => {
    if (pick.checked) state.selected.add(item.id);
    else state.selected.delete(item.id);
    updateSelected();
  });
  const decided = item.decided_by
    ? h("span", { class: "decided" }, `${item.status} by ${item.decided_by} at ${when(item.decided_at)}`)
    : null;
  const row = h(
    "li",
    {
      class: `item${index === state.cursor ? " current" : ""}${item.refused ? " refused" : ""}`,
      "data-id": item.id,
      "aria-current": index === state.cursor ? "true" : null,
    },
    pick,
    h("a", { href, class: "thumb", tabindex: "-1" }, shot(item.thumbnail_url, `thumbnail of ${item.key}`)),
    h(
      "div",
      { class: "what" },
      h("a", { href, class: "key" }, item.key),
      h(
        "div",
        { class: "meta" },
        chips(item.flags),
        item.providers && item.providers.length ? h("span", { class: "by" }, `by ${item.providers.join(", ")}`) : null,
        h("time", { datetime: item.analyzed_at }, when(item.analyzed_at)),
        h("span", { class: `status status-${item.status}` }, item.status),
        decided,
      ),
      item.refused ? h("div", { class: "refusal", role: "alert" }, item.refused) : null,
    ),
    rowActions(item),
  );
  row.addEventListener("click", (event) => {
    if (event.target.closest("button, a, input")) return;
    state.cursor = index;
    markCurrent();
  });
  return row;
}

function renderItems() {
  const list = document.getElementById("items");
  if (!list) return;
  list.replaceChildren(...state.items.map(itemRow));
  const end = document.getElementById("queue-end");
  end.replaceChildren();
  // A filtered page reads a bounded number of reviews: with a next, none found is not none at all.
  if (!state.items.length && state.next) {
    end.append(`No matches in the first ${state.read.toLocaleString("en")} reviews read; there are more to read. `);
  } else if (!state.items.length) end.append("Nothing here: the queue is empty for these filters.");
  if (state.next) {
    end.append(h("button", { type: "button", id: "more", onclick: loadPage }, "Show more"));
  }
  updateSelected();
}

function updateSelected() {
  const label = document.getElementById("selected-count");
  if (label) label.textContent = state.selected.size ? `${state.selected.size} selected` : "none selected";
  document.querySelectorAll("[data-bulk]").forEach((b) => {
    b.disabled = state.selected.size === 0;
  });
  const all = document.getElementById("select-all");
  if (all) all.checked = state.items.length > 0 && state.selected.size === state.items.length;
}

function markCurrent() {
  document.querySelectorAll("#items .item").forEach((row, index) => {
    const current = index === state.cursor;
    row.classList.toggle("current", current);
    if (current) {
      row.setAttribute("aria-current", "true");
      row.scrollIntoView({ block: "nearest" });
    } else row.removeAttribute("aria-current");
  });
}

// -- deciding -------------------------------------------------------------------------------------
function askReason(decision, what) {
  const dialog = document.getElementById("reason-dialog");
  const text = document.getElementById("reason-text");
  document.getElementById("reason-title").textContent = decision === "appeal" ? "Appeal" : "Reject";
  document.getElementById("reason-submit").textContent = decision === "appeal" ? "Appeal" : "Reject";
  document.getElementById("reason-what").textContent = what;
  text.value = "";
  return new Promise((resolve) => {
    const form = document.getElementById("reason-form");
    const cancel = document.getElementById("reason-cancel");
    const finish = (value) => {
      form.removeEventListener("submit", submit);
      cancel.removeEventListener("click", dismiss);
      dialog.removeEventListener("cancel", dismiss);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const submit = (event) => {
      event.preventDefault();
      const reason = text.value.trim();
      if (reason) finish(reason);
    };
    const dismiss = (event) => {
      event.preventDefault();
      finish(null);
    };
    // Enter records the reason (Shift+Enter starts a new line).
    const enter = (event) => {
      if (event.key === "Enter" && !event.shiftKey) submit(event);
    };
    text.onkeydown = enter;
    form.addEventListener("submit", submit);
    cancel.addEventListener("click", dismiss);
    dialog.addEventListener("cancel", dismiss);
    dialog.showModal();
    text.focus();
  });
}

// One decision through the API. Returns "done", "refused" or "failed"; a refusal (someone decided first,
// or new bytes) says who decided, and the item shows its current status.
async function decide(item, decision, reason) {
  try {
    const answer = await api.decide(item.id, decision, item.status, reason, item.etag);
    Object.assign(item, answer.review, { refused: null });
    if (answer.note) notice(answer.note, "warning");
    return "done";
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) {
      const current = error.body.current || {};
      Object.assign(item, {
        status: current.status || item.status,
        decided_by: current.decided_by,
        decided_at: current.decided_at,
        refused: `Refused: ${error.message}`,
      });
      return "refused";
    }
    notice(`${LABELS[decision].replace("…", "")} failed: ${error.message}`, "error");
    return "failed";
  }
}

async function act(item, decision) {
  if (state.deciding) return; // one decision at a time: the next key acts on what the list shows after it
  if (!(DECISIONS[item.status] || []).includes(decision)) {
    notice(`${item.key} is ${item.status}: it cannot be ${DONE[decision].toLowerCase()}.`, "warning");
    return;
  }
  let reason = null;
  if (NEEDS_REASON.has(decision)) {
    reason = await askReason(decision, item.key);
    if (!reason) return;
  }
  state.deciding = true;
  busy(true);
  try {
    const outcome = await decide(item, decision, reason);
    if (outcome === "done") notice(`${DONE[decision]}: ${item.key}`, "success");
    if (outcome === "refused") notice(`${item.key}: ${item.refused}`, "error");
    await afterDecisions();
  } finally {
    state.deciding = false;
    busy(false);
  }
}

async function bulkDecide(decision) {
  const chosen = state.items.filter((i) => state.selected.has(i.id));
  if (!chosen.length) return;
  let reason = null;
  if (NEEDS_REASON.has(decision)) {
    reason = await askReason(decision, `${chosen.length} selected`);
    if (!reason) return;
  }
  const tally = { done: 0, refused: 0, failed: 0 };
  state.deciding = true;
  busy(true);
  try {
    for (const item of chosen) tally[await decide(item, decision, reason)] += 1;
  } finally {
    state.deciding = false;
  }
  const parts = [`${tally.done} ${DONE[decision].toLowerCase()}`];
  if (tally.refused) parts.push(`${tally.refused} refused (decided by someone else first)`);
  if (tally.failed) parts.push(`${tally.failed} failed`);
  notice(parts.join(", "), tally.refused || tally.failed ? "warning" : "success");
  state.selected.clear();
  await afterDecisions();
}

async function afterDecisions() {
  if (state.view === "detail" && state.detail) {
    await showDetail(state.detail.id, true);
    return;
  }
  // Decided items leave this status's list; refused ones stay, saying who decided.
  busy(true);
  const before = state.items[state.cursor];
  state.items = state.items.filter((i) => i.status === state.query.status || i.refused);
  const kept = state.items.indexOf(before);
  state.cursor = Math.min(kept >= 0 ? kept : state.cursor, Math.max(state.items.length - 1, 0));
  renderItems();
  await loadCounts();
  busy(false);
}

// -- one review -----------------------------------------------------------------------------------
function bar(category, provider, sourceLabel) {
  const t = settings().thresholds || {};
  const own = (t.labels || {})[`${provider}.${String(sourceLabel || "").toLowerCase()}`];
  if (own !== undefined) return own;
  const categories = t.categories || {};
  if (category === "explicit") return categories.explicit ?? t.nsfw;
  if (category === "ai_generated") return t.ai_generated;
  if (category === "deepfake") return t.deepfake;
  if (category === "safe") return null;
  return categories[category] ?? null;
}

function scoreRow(name, score, threshold, extra) {
  const reached = threshold !== null && threshold !== undefined && score >= threshold;
  const verdict =
    threshold === null || threshold === undefined
      ? "no threshold"
      : `${reached ? "≥" : "<"} ${Number(threshold).toFixed(2)}`;
  return h(
    "li",
    { class: `score-row${reached ? " reached" : ""}` },
    h("span", { class: "score-name" }, name, extra ? h("span", { class: "muted" }, ` ${extra}`) : null),
    scoreBar(score, threshold),
    h("span", { class: "score-value" }, `${score.toFixed(2)} `, h("span", { class: "muted" }, verdict)),
  );
}

function providerCards(result) {
  const runs = result.providers || [];
  const names = runs.map((r) => r.name);
  const categories = (result.moderation && result.moderation.categories) || [];
  for (const c of categories) if (!names.includes(c.provider)) names.push(c.provider);
  return h(
    "div",
    { class: "providers" },
    names.map((name) => {
      const run = runs.find((r) => r.name === name) || {};
      const best = new Map();
      for (const c of categories.filter((c) => c.provider === name)) {
        const known = best.get(c.name);
        if (!known || c.confidence > known.confidence) best.set(c.name, c);
      }
      const rows = [...best.values()]
        .sort((a, b) => b.confidence - a.confidence)
        .map((c) =>
          scoreRow(
            c.name,
            c.confidence,
            bar(c.name, name, c.source_label),
            [c.source_label !== c.name ? `“${c.source_label}”` : "", c.frame !== null && c.frame !== undefined ? `frame ${c.frame}` : ""]
              .filter(Boolean)
              .join(" · "),
          ),
        );
      const ai = result.ai_generated;
      if (ai && ai.provider === name && ai.confidence !== null && ai.confidence !== undefined) {
        rows.push(scoreRow("ai_generated", ai.confidence, bar("ai_generated", name), `verdict ${ai.verdict}`));
      } else if (ai && ai.provider === name) {
        rows.push(h("li", { class: "score-row" }, `ai_generated: verdict ${ai.verdict} (no score)`));
      }
      const deepfake = result.deepfake;
      if (deepfake && deepfake.provider === name) {
        rows.push(scoreRow("deepfake", deepfake.confidence, bar("deepfake", name), deepfake.detected ? "detected" : ""));
      }
      const facts = [
        run.status,
        run.latency_ms !== undefined ? `${run.latency_ms} ms` : null,
        run.cost_units ? `$${Number(run.cost_units).toFixed(4)}` : null,
      ].filter(Boolean);
      return h(
        "article",
        { class: "provider", "aria-label": name },
        h("h3", {}, name, h("span", { class: "muted" }, ` ${facts.join(" · ")}`)),
        run.error ? h("p", { class: "error-text" }, `${run.error.code}: ${run.error.message}`) : null,
        rows.length ? h("ul", { class: "scores" }, rows) : h("p", { class: "muted" }, "No moderation or AI score."),
      );
    }),
  );
}

function framesSection(result, original, queue) {
  const analyzed = (queue && queue.strip_frames) || result.frames_analyzed || [];
  if (!analyzed.length) return null;
  const flagged = new Set(result.frames_flagged || []);
  const cells = analyzed.map((frame, position) => {
    const cell = h(
      "div",
      { class: `frame${flagged.has(frame) ? " flagged" : ""}`, title: flagged.has(frame) ? "flagged" : "" },
      h("span", { class: "frame-label" }, `frame ${frame}${flagged.has(frame) ? " · flagged" : ""}`),
    );
    if (original.frames_strip_url) {
      const image = h("span", { class: "frame-image shot" });
      image.style.backgroundImage = `url("${original.frames_strip_url}")`;
      image.style.backgroundSize = `${analyzed.length * 96}px 96px`;
      image.style.backgroundPosition = `-${position * 96}px 0`;
      image.addEventListener("click", () => image.classList.toggle("revealed"));
      cell.prepend(image);
    }
    return cell;
  });
  return h(
    "section",
    { class: "card", "aria-label": "Frames" },
    h("h2", {}, "Frames"),
    h(
      "p",
      { class: "muted" },
      `${result.frames} frames in the file; ${analyzed.length} analyzed, ${flagged.size} reached a threshold.`,
    ),
    h("div", { class: "frames" }, cells),
  );
}

function provenanceSection(result) {
  const p = result.provenance;
  const ai = result.ai_generated;
  const lines = [];
  if (p) {
    if (p.c2pa_manifest) lines.push(["C2PA manifest", p.c2pa_proves_ai ? "present, validated, declares generative AI" : "present"]);
    if (p.c2pa_remote_manifest) lines.push(["C2PA", "points at a remote manifest (not fetched)"]);
    if (p.claim_generator) lines.push(["Claim generator", p.claim_generator]);
    if (p.digital_source_type) lines.push(["Digital source type", p.digital_source_type]);
    if (p.software) lines.push(["Software", p.software]);
    if ((p.generator_metadata || []).length) lines.push(["Generator metadata", p.generator_metadata.join(", ")]);
  }
  const evidence = [...((p && p.evidence) || []), ...((ai && ai.evidence) || [])];
  const unique = [...new Set(evidence)];
  if (!lines.length && !unique.length) return null;
  return h(
    "section",
    { class: "card", "aria-label": "Provenance" },
    h("h2", {}, "Provenance"),
    lines.length ? h("dl", { class: "facts" }, lines.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])) : null,
    unique.length ? h("ul", { class: "evidence" }, unique.map((e) => h("li", {}, e))) : null,
  );
}

function matchesSection(result) {
  const matches = result.matches || [];
  if (!matches.length) return null;
  return h(
    "section",
    { class: "card", "aria-label": "Hash-bank matches" },
    h("h2", {}, "Hash-bank matches"),
    h(
      "table",
      { class: "table" },
      h("thead", {}, h("tr", {}, ["Bank", "Distance", "Label", "Frame"].map((c) => h("th", { scope: "col" }, c)))),
      h(
        "tbody",
        {},
        matches.map((m) =>
          h(
            "tr",
            {},
            h("td", { "data-label": "Bank" }, m.bank),
            h("td", { "data-label": "Distance" }, `${m.distance} / 256`),
            h("td", { "data-label": "Label" }, m.label || "–"),
            h("td", { "data-label": "Frame" }, m.frame ?? "–"),
          ),
        ),
      ),
    ),
  );
}

function historySection(history) {
  return h(
    "section",
    { class: "card", "aria-label": "Audit history" },
    h("h2", {}, "Audit history"),
    history.length
      ? h(
          "table",
          { class: "table", id: "history" },
          h(
            "thead",
            {},
            h("tr", {}, ["When", "Decision", "Status", "By", "Reason", "Published"].map((c) => h("th", { scope: "col" }, c))),
          ),
          h(
            "tbody",
            {},
            history.map((r) =>
              h(
                "tr",
                { "data-decision": r.decision },
                h("td", { "data-label": "When" }, when(r.decided_at)),
                h("td", { "data-label": "Decision" }, r.decision),
                h("td", { "data-label": "Status" }, `${r.previous} → ${statusAfter(r)}`),
                h("td", { "data-label": "By", class: "who" }, r.by),
                h("td", { "data-label": "Reason" }, r.reason || "–"),
                h("td", { "data-label": "Published" }, r.published ? "yes" : "not yet"),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No decision yet."),
  );
}

function statusAfter(record) {
  return { approve: "approved", reject: "rejected", escalate: "escalated", appeal: "pending" }[record.decision] || "?";
}

async function showDetail(id, keepScroll = false) {
  if (!keepScroll) main().replaceChildren(h("p", { class: "muted" }, "Loading…"));
  let shown;
  try {
    shown = await api.show(id);
  } catch (error) {
    main().replaceChildren(
      h("p", { class: "error-text" }, `Could not show this review: ${error.message}`),
      h("a", { href: queueHash() }, "Back to the queue"),
    );
    return;
  }
  const result = shown.result || {};
  const review = shown.review || {};
  const original = shown.original || {};
  const item = {
    id: shown.id,
    key: result.key,
    status: review.status,
    etag: result.etag,
    decided_by: review.decided_by,
    decided_at: review.decided_at,
    refused: state.detail && state.detail.id === shown.id ? state.detail.item.refused : null,
  };
  state.detail = { id: shown.id, item };
  const showable = SHOWABLE.has(result.format) && (result.frames || 1) === 1;
  const preview = showable ? original.url : original.thumbnail_url;
  const position = state.items.findIndex((i) => i.id === shown.id);
  const facts = [
    ["Flags", chips(result.flags)],
    ["Status", h("span", { class: `status status-${review.status}` }, review.status)],
    review.decided_by ? ["Decided", `${review.decided_by}, ${when(review.decided_at)}`] : null,
    review.reason ? ["Reason", review.reason] : null,
    review.appeals ? ["Appeals", String(review.appeals)] : null,
    ["Format", `${result.format || "?"}, ${bytes(result.size_bytes)}, ${result.width || "?"}×${result.height || "?"}`],
    result.frames > 1 ? ["Frames", `${result.frames} (${(result.frames_analyzed || []).length} analyzed)`] : null,
    ["Analyzed", when(result.analyzed_at)],
    ["Result", result.status],
    ["SHA-256", h("code", { class: "hash" }, result.sha256 || "–")],
  ].filter(Boolean);
  const actions = h(
    "div",
    { class: "detail-actions" },
    decisionButtons(item, (decision) => [`${LABELS[decision]} `, h("kbd", {}, decision[0])]),
  );
  main().replaceChildren(
    h(
      "section",
      { class: "detail", "aria-label": "Review" },
      h(
        "nav",
        { class: "crumbs" },
        h("a", { href: queueHash() }, "← Queue"),
        position >= 0 ? h("span", { class: "muted" }, ` ${position + 1} of ${state.items.length}`) : null,
      ),
      h("h1", { class: "key" }, result.key || ""),
      h("p", { class: "muted where" }, `s3://${result.bucket}/${result.key}${result.version_id ? ` (version ${result.version_id})` : ""}`),
      item.refused ? h("div", { class: "refusal", role: "alert" }, item.refused) : null,
      h(
        "div",
        { class: "detail-grid" },
        h(
          "figure",
          { class: "preview" },
          shot(preview, `image under review: ${result.key}`, true),
          h(
            "figcaption",
            { class: "muted" },
            preview ? "Click the image (or press v) to reveal or blur it. " : "No preview of this format. ",
            original.url ? h("a", { href: original.url, rel: "noreferrer", target: "_blank" }, "Original") : null,
            original.url ? ` (link valid ${Math.round((original.expires_in || 300) / 60)} minutes)` : null,
          ),
        ),
        h(
          "div",
          { class: "side" },
          actions,
          h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
        ),
      ),
      h("section", { class: "card", "aria-label": "Providers" }, h("h2", {}, "What each provider said"), providerCards(result)),
      framesSection(result, original, shown.queue),
      provenanceSection(result),
      matchesSection(result),
      historySection(shown.history || []),
    ),
  );
}

// -- stats ----------------------------------------------------------------------------------------
async function showStats() {
  const ranges = h(
    "div",
    { class: "status-tabs" },
    [7, 14, 30].map((days) =>
      h("a", { href: `#/stats?days=${days}`, class: days === state.days ? "active" : null }, `${days} days`),
    ),
  );
  main().replaceChildren(h("section", { class: "stats" }, h("h1", {}, "Stats"), ranges, h("p", { class: "muted" }, "Loading…")));
  let stats;
  try {
    stats = await api.stats(state.days);
  } catch (error) {
    notice(`Could not load the stats: ${error.message}`, "error");
    return;
  }
  const target = stats.precision.length ? stats.precision[0].target : 0.9;
  const spendNote = stats.spend.error
    ? h("p", { class: "muted" }, stats.spend.error)
    : h("p", { class: "muted" }, "From the analysis function's EstimatedCost metrics, at the configured prices.");
  main().replaceChildren(
    h(
      "section",
      { class: "stats" },
      h("h1", {}, "Stats"),
      ranges,
      h(
        "div",
        { class: "chart-grid" },
        h("section", { class: "card" }, h("h2", {}, "Flags per day"), h("p", { class: "muted" }, "Images that entered review, by flag."), stackedBars(stats.days, stats.flags, { label: "flags per day" })),
        h("section", { class: "card" }, h("h2", {}, "Decisions per day"), stackedBars(stats.days, stats.decisions, { label: "decisions per day" })),
        h(
          "section",
          { class: "card" },
          h("h2", {}, "Precision of flags"),
          h("p", { class: "muted" }, "Per provider and category: rejected ÷ (rejected + approved) of flagged images, latest decision each."),
          precisionBars(stats.precision, target),
        ),
        h("section", { class: "card" }, h("h2", {}, "Estimated vendor spend"), spendNote, stackedBars(stats.days, stats.spend.providers || {}, { money: true, label: "vendor spend per day" })),
      ),
    ),
  );
}

// -- keyboard -------------------------------------------------------------------------------------
function currentItem() {
  if (state.view === "detail" && state.detail) return state.detail.item;
  return state.items[state.cursor] || null;
}

function onKey(event) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest("input, textarea, select") || document.querySelector("dialog[open]")) return;
  const key = event.key;
  const item = currentItem();
  if (key === "?") {
    document.getElementById("help-dialog").showModal();
  } else if ((key === "j" || key === "k") && state.view === "queue" && state.items.length) {
    state.cursor = Math.max(0, Math.min(state.items.length - 1, state.cursor + (key === "j" ? 1 : -1)));
    markCurrent();
  } else if ((key === "j" || key === "k") && state.view === "detail") {
    const position = state.items.findIndex((i) => i.id === state.detail.id) + (key === "j" ? 1 : -1);
    if (position >= 0 && position < state.items.length) {
      state.cursor = position;
      location.hash = `#/review/${state.items[position].id}`;
    }
  } else if (key === "a" && item) {
    act(item, "approve");
  } else if (key === "r" && item) {
    act(item, item.status === "rejected" ? "appeal" : "reject");
  } else if (key === "e" && item) {
    act(item, "escalate");
  } else if (key === "x" && state.view === "queue" && item) {
    if (state.selected.has(item.id)) state.selected.delete(item.id);
    else state.selected.add(item.id);
    renderItems();
  } else if ((key === "Enter" || key === "o") && state.view === "queue" && item) {
    location.hash = `#/review/${item.id}`;
  } else if (key === "u" || (key === "Escape" && state.view === "detail")) {
    if (state.view !== "queue") location.hash = queueHash();
  } else if (key === "v") {
    const image = state.view === "detail"
      ? document.querySelector(".preview .shot")
      : document.querySelector("#items .current .shot");
    if (image) image.classList.toggle("revealed");
  } else {
    return;
  }
  event.preventDefault();
}

// -- start ----------------------------------------------------------------------------------------
function blurSetting() {
  const box = document.getElementById("blur-setting");
  const on = localStorage.getItem(BLUR_SETTING) !== "off";
  box.checked = on;
  document.body.classList.toggle("blur-on", on);
  box.addEventListener("change", () => {
    localStorage.setItem(BLUR_SETTING, box.checked ? "on" : "off");
    document.body.classList.toggle("blur-on", box.checked);
  });
}

async function boot() {
  blurSetting();
  document.getElementById("help-button").addEventListener("click", () => document.getElementById("help-dialog").showModal());
  const config = await start();
  if (config.sign_in === "none") {
    main().replaceChildren(h("p", {}, "The console is off for this stack (ConsoleSignIn=none)."));
    return;
  }
  if (config.sign_in === "cognito") {
    const out = document.getElementById("sign-out");
    out.hidden = false;
    out.addEventListener("click", signOut);
  }
  try {
    const me = await api.me();
    document.getElementById("user").textContent = config.sign_in === "local" ? `${me.user} (local)` : me.user;
  } catch (error) {
    main().replaceChildren(h("p", { class: "error-text", role: "alert" }, error.message));
    return;
  }
  document.addEventListener("keydown", onKey);
  window.addEventListener("hashchange", route);
  await route();
}

boot();
