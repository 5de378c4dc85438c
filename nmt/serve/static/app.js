// The page's client: POST /v1/translate with attention, then the translation, its n-best list
// and an attention heatmap (a table: one row per target token, one cell per source token).
"use strict";

const KEY_STORAGE = "nmt-api-key";
const NUMBER_OPTIONS = ["beam_size", "n_best", "length_penalty", "temperature", "top_k", "top_p",
                        "no_repeat_ngram_size"];
let sequence = 0;   // only the newest request's answer is shown
let typingTimer = null;

const $ = (id) => document.getElementById(id);

async function call(path, init = {}) {
  const headers = {"Content-Type": "application/json"};
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) headers["X-API-Key"] = key;
  const response = await fetch(path, {...init, headers});
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON: reported below */ }
  if (response.status === 403) $("key-form").hidden = false;
  if (!response.ok) throw new Error((body && body.error) || `HTTP ${response.status}`);
  return body;
}

function decodingOptions() {
  const options = {};
  if ($("strategy").value) options.strategy = $("strategy").value;
  for (const id of NUMBER_OPTIONS) {
    const field = $(id);
    if (!field.closest("label").hidden && field.value.trim() !== "") options[id] = Number(field.value);
  }
  return options;
}

function showStrategyOptions() {
  const strategy = $("strategy").value;
  for (const label of document.querySelectorAll("label[data-for]")) {
    label.hidden = strategy !== "" && label.dataset.for !== strategy;
  }
}

function setError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

async function translate() {
  // An explicit translation (button, Ctrl+Enter, a saved key) makes the pending live one
  // redundant: without this it fired afterwards and rendered the same result a second time.
  clearTimeout(typingTimer);
  const lines = $("source").value.split("\n");
  const mine = ++sequence;
  if (!lines.some((line) => line.trim())) {
    $("results").replaceChildren();
    setError("");
    return;
  }
  $("status").textContent = "Translating…";
  try {
    const body = await call("/v1/translate", {
      method: "POST",
      body: JSON.stringify({sentences: lines, options: decodingOptions(), attention: true}),
    });
    if (mine !== sequence) return;
    render(body.translations);
    setError("");
    const count = body.translations.filter((t) => t.source.trim()).length;
    $("status").textContent = `${count} sentence${count === 1 ? "" : "s"} translated`;
  } catch (error) {
    if (mine !== sequence) return;
    setError(error.message);
    $("status").textContent = "";
  }
}

function render(translations) {
  const sections = translations.filter((t) => t.source.trim()).map((t) => {
    const section = element("article", "result");
    section.append(element("p", "source", t.source), element("p", "translation", t.translation));
    if (t.nbest.length > 1) {
      const list = element("ol", "nbest");
      for (const entry of t.nbest) {
        const item = element("li", "", entry.translation);
        const score = entry.norm_score === null ? "–" : entry.norm_score.toFixed(3);
        item.append(element("span", "score", ` ${score}`));
        list.append(item);
      }
      section.append(list);
    }
    if (t.attention) section.append(heatmap(t.attention));
    return section;
  });
  $("results").replaceChildren(...sections);
}

function heatmap(attention) {
  const {source_tokens: sources, target_tokens: targets, weights} = attention;
  const table = element("table", "heatmap");
  table.dataset.rows = String(targets.length);
  table.dataset.cols = String(sources.length);
  table.append(element("caption", "",
                       "Attention: a row per target token, a column per source token"));
  const head = element("tr");
  head.append(element("th", "corner"));
  for (const token of sources) {
    const th = element("th", "src", token);
    th.scope = "col";
    head.append(th);
  }
  const thead = element("thead");
  thead.append(head);
  const tbody = element("tbody");
  targets.forEach((target, i) => {
    const row = element("tr");
    const th = element("th", "tgt", target);
    th.scope = "row";
    row.append(th);
    sources.forEach((source, j) => {
      const weight = weights[i][j];
      const cell = element("td", "cell");
      const label = `${target} ← ${source}: ${weight.toFixed(2)}`;
      cell.title = label;
      cell.setAttribute("aria-label", label);
      cell.style.backgroundColor = `rgba(29, 78, 216, ${Math.min(1, Math.max(0, weight))})`;
      row.append(cell);
    });
    tbody.append(row);
  });
  table.append(thead, tbody);
  return table;
}

function element(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

async function showDirection() {
  try {
    const languages = await call("/languages");
    const from = languages.find((lang) => lang.targets.length);
    const name = (code) => (languages.find((lang) => lang.code === code) || {name: code}).name;
    if (from) $("direction").textContent = `${from.name} → ${name(from.targets[0])}`;
  } catch (error) { /* the page works without it */ }
}

document.addEventListener("DOMContentLoaded", () => {
  $("translate").addEventListener("click", translate);
  $("source").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      translate();
    }
  });
  $("source").addEventListener("input", () => {
    clearTimeout(typingTimer);
    typingTimer = setTimeout(translate, 600);
  });
  $("strategy").addEventListener("change", showStrategyOptions);
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, $("api-key").value);
    $("key-form").hidden = true;
    translate();
  });
  showStrategyOptions();
  showDirection();
});
